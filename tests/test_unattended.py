"""A device left alone for months: the queue never stalls, faults are survived and reported, restarts keep
what is due. Over real HTTP to real servers (in-process or `appliance serve` subprocesses)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance import faces as faces_module
from appliance import ingest, jobs
from appliance.datadir import DATABASE_FILE, TOKEN_FILE
from appliance.db import Database, connect

from .conftest import FACES, PHOTOS, make_images


def wait_until(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s")


def rows(data_dir: Path, sql: str, *args) -> list:
    conn = connect(data_dir / DATABASE_FILE)
    try:
        return [tuple(row) for row in conn.execute(sql, args)]
    finally:
        conn.close()


# -- the queue's state lives in the database ---------------------------------------------------------------


def test_the_queue_goes_on_after_every_finished_job_was_pruned(client, library):
    client.ingest(PHOTOS)  # ids 1..15 handed out
    db = client.appliance.db
    with db.write() as conn:
        conn.execute("UPDATE jobs SET created_at = '2000-01-01T00:00:00Z'")
    assert jobs.prune(db, keep_days=30) == 1
    assert rows(client.data_dir, "SELECT count(*) FROM job_items") == [(0,)]

    make_images(library, 3)
    progress = client.ingest(library)  # stalled for ever when the feeder remembered the last id in memory
    assert (progress["done"], progress["failed"]) == (3, 0)
    item_ids = [row[0] for row in rows(client.data_dir, "SELECT id FROM job_items ORDER BY id")]
    assert min(item_ids) > 15, "item ids never repeat"


def test_a_path_is_queued_once_while_it_waits_or_runs(start_appliance, library):
    client = start_appliance(ingest_workers=1)
    paths = make_images(library, 30, size=(400, 300))
    (library / "link.jpg").symlink_to(paths[0])  # the same file under a second name
    first = client.post("/images/add-folder", json={"folder_path": str(library)}).json()
    assert first["queued"] == 30
    second = client.post("/images/add-folder", json={"folder_path": str(library)})
    third = client.post("/images/images", json={"paths": [str(p) for p in paths[-5:]]})
    assert second.json()["queued"] + third.json()["queued"] < 30
    client.wait_for_job(first["job_id"])
    for answer in (second, third):
        if answer.json().get("job_id"):
            client.wait_for_job(answer.json()["job_id"])
    per_path = rows(client.data_dir, "SELECT path, count(*) FROM job_items WHERE state = 'done' GROUP BY path")
    assert len(per_path) == 30 and all(count == 1 for _, count in per_path), per_path


def test_add_folder_skips_failed_files_that_did_not_change(client, library):
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    make_images(library, 2)
    assert client.ingest(library)["failed"] == 1
    again = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert again.status_code == 200 and again.json()["queued"] == 0
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff still not a jpeg, but changed")
    assert client.ingest(library)["total"] == 1


# -- supervised background threads -------------------------------------------------------------------------


def test_a_failing_background_thread_is_reported_and_recovers(start_appliance, monkeypatch):
    """Re-clustering raising MemoryError used to kill the feeder for good while /health said ok."""
    failures = {"left": 2}
    real = faces_module.FaceIndex.recluster

    def recluster_failing_twice(self, *args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise MemoryError("no memory for the kNN graph")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(faces_module.FaceIndex, "recluster", recluster_failing_twice)
    client = start_appliance(recluster_after=1)
    client.ingest(FACES)
    degraded = wait_until(lambda: (h := client.get("/health").json())["status"] == "degraded" and h, 20, "degraded")
    assert any("no memory for the kNN graph" in problem for problem in degraded["problems"])
    assert degraded["background"][0]["thread"] == "housekeeping"
    wait_until(lambda: client.get("/health").json()["status"] == "ok", 30, "recovered")
    assert failures["left"] == 0
    assert rows(client.data_dir, "SELECT value FROM counters WHERE name = 'faces_changed'") == [(0,)]
    # and the queue still works
    assert client.ingest(PHOTOS)["finished"]


def test_an_analyser_survives_a_failure_to_record_a_failure(start_appliance, library, monkeypatch):
    """store_failure raising (twice: also the fallback that records an internal error) used to kill the
    analyser thread for good."""
    calls = {"n": 0}
    real = ingest.store_failure

    def store_failure_failing_twice(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError(errno.EIO, "I/O error while recording")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "store_failure", store_failure_failing_twice)
    client = start_appliance(ingest_workers=1)
    (library / "broken.png").write_bytes(b"not a png at all")
    make_images(library, 3)
    job = client.post("/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
    health = wait_until(lambda: (h := client.get("/health").json())["status"] == "degraded" and h, 10, "degraded")
    assert "I/O error while recording" in health["problems"][0]
    progress = client.wait_for_job(job)
    assert (progress["done"], progress["failed"]) == (3, 1)
    assert progress["failures"][0]["error"].startswith("Cannot decode"), "its own reason, recorded on a retry"
    wait_until(lambda: client.get("/health").json()["status"] == "ok", 10, "ok again")


def test_a_failed_commit_is_rolled_back_and_the_next_write_works(tmp_path):
    db = Database(tmp_path / "a.db")
    with pytest.raises(db.errors.IntegrityError):
        with db.write() as conn:
            conn.execute("PRAGMA defer_foreign_keys = ON")  # the violation is found only at COMMIT
            conn.execute("INSERT INTO album_images (album_id, image_id, position) VALUES (7, 7, 1)")
    with db.write() as conn:  # "cannot start a transaction within a transaction" before the fix
        conn.execute("INSERT INTO albums (name) VALUES ('after')")
    assert db.read().execute("SELECT name FROM albums").fetchall()[0][0] == "after"
    assert db.read().execute("SELECT count(*) FROM album_images").fetchone()[0] == 0
    db.close()


# -- disk full ---------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder`, leaving about `leave` bytes free."""
    filler = folder / f"filler-{leave}"
    if leave:
        free = shutil.disk_usage(folder).free
        with open(filler, "wb", buffering=0) as f:
            for _ in range(max(0, free - leave) >> 20):
                f.write(b"\0" * (1 << 20))
        return filler
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC
            chunk = b"\0" * 4096
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
    return filler


def test_a_full_disk_answers_507_pauses_ingest_and_everything_resumes(start_appliance, library, small_disk):
    client = start_appliance(data_dir=small_disk / "data", ingest_workers=2)
    make_images(library, 40, size=(800, 600))
    job = client.post("/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
    wait_until(lambda: client.get(f"/images/jobs/{job}").json()["done"] >= 2, 60, "ingest started")
    # Below the reserve but with room to write: ingest pauses by itself (nothing fails for want of space).
    nearly = fill(small_disk, leave=8 << 20)
    health = wait_until(lambda: (h := client.get("/health").json())["status"] == "degraded" and h, 10, "degraded")
    assert health["disk"]["full"] and 4 << 20 < health["disk"]["free_bytes"] < 16 << 20
    assert any("disk is full" in problem for problem in health["problems"])
    wait_until(lambda: client.get("/health").json()["worker"]["busy"] == [], 10, "the image in hand finished")
    paused_at = client.get(f"/images/jobs/{job}").json()
    time.sleep(3)
    assert client.get(f"/images/jobs/{job}").json()["done"] == paused_at["done"], "ingest pauses"
    assert paused_at["failed"] == 0, "a full disk is nobody's file's fault"
    filler = fill(small_disk)

    # Small writes may still fit in pages SQLite already has; the first that needs more space answers 507.
    refused = None
    for n in range(300):
        response = client.post("/albums/create-album", json={"name": f"album {n}", "description": "x" * 9_000})
        if response.status_code == 507:
            refused = n
            break
        assert response.status_code == 201, response.text
    assert refused is not None, "no write was refused on a full disk"
    assert "disk is full" in response.json()["detail"]
    names = {a["album_name"] for a in client.get("/albums/view-all").json()["albums"]}
    assert f"album {refused}" not in names, "a refused write changed nothing"

    filler.unlink()
    nearly.unlink()
    wait_until(lambda: client.get("/health").json()["status"] == "ok", 10, "ok within 10 s of space coming back")
    assert client.post("/albums/create-album", json={"name": "after"}).status_code == 201
    final = client.wait_for_job(job, timeout=120)
    assert (final["done"], final["failed"]) == (40, 0), final
    assert len(list((small_disk / "data" / "thumbnails").rglob("*.jpg"))) == 40


def test_running_out_of_inodes_is_a_full_disk_too(start_appliance, library, tmp_path):
    mount = tmp_path / "few-inodes"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m,nr_inodes=400", "tmpfs", str(mount)], check=True)
    try:
        client = start_appliance(data_dir=mount / "data", ingest_workers=1)
        fillers = mount / "fillers"
        fillers.mkdir()
        n = 0
        try:
            while True:
                (fillers / str(n)).touch()
                n += 1
        except OSError as error:
            assert error.errno == errno.ENOSPC
        make_images(library, 10)
        job = client.post("/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
        health = wait_until(lambda: (h := client.get("/health").json())["status"] == "degraded" and h, 10)
        assert health["disk"]["full"] and health["disk"]["free_bytes"] > 50 << 20 and health["disk"]["free_inodes"] < 64
        assert any("inodes" in problem for problem in health["problems"])
        time.sleep(3)
        assert client.get(f"/images/jobs/{job}").json()["done"] == 0, "paused, not decoding the same image again"
        shutil.rmtree(fillers)
        final = client.wait_for_job(job, timeout=60)
        assert (final["done"], final["failed"]) == (10, 0)
    finally:
        client.appliance.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)


# -- crashes and restarts ----------------------------------------------------------------------------------


def slow_image(path: Path) -> Path:
    """A PNG of noise large enough that its analysis takes a moment: a kill lands during it."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(path, compress_level=1)
    return path


def busy_paths(client) -> list[str]:
    return [busy["path"] for busy in client.get("/health").json()["worker"]["busy"]]


def test_a_file_that_kills_the_process_fails_after_three_crashes(run_server, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    killer = slow_image(library / "killer.png")
    innocent = make_images(library / "others", 4)
    data_dir = tmp_path / "data"
    for attempt in range(3):
        server = run_server(data_dir=data_dir)
        client = server.wait_ready()
        if attempt == 0:
            client.post("/images/images", json={"paths": [str(killer)]})
            client.post("/images/images", json={"paths": [str(p) for p in innocent]})

        wait_until(lambda c=client: str(killer) in busy_paths(c), 60, "the killer file in analysis")
        server.stop(signal.SIGKILL)  # what the kernel's OOM killer does

    server = run_server(data_dir=data_dir)
    client = server.wait_ready()
    status = client.get("/images/class-ids", params={"path": str(killer)}).json()
    assert status["status"] == "failed" and "analysis crashed 3 times" in status["error"]
    queue = wait_until(lambda: (q := client.get("/health").json()["queue"])["queued"] + q["running"] == 0 and q, 60)
    assert queue["failed"] == 1
    others = dict(rows(data_dir, "SELECT path, state FROM job_items WHERE path != ?", str(killer)))
    assert others == {str(p): "done" for p in innocent}, "the files analysed beside it are not blamed"
    assert client.get("/health").json()["status"] == "ok"
    # and it stays failed: adding its folder again does not hand it out for a fourth crash
    again = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert again.status_code == 200 and again.json()["queued"] == 0, again.text


def seed_faces(data_dir: Path, count: int) -> None:
    """Many stored faces (random unit vectors) with a re-clustering due, written straight into the database."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / DATABASE_FILE)
    index = faces_module.FaceIndex(128, 0.5)
    index.open(db)
    vectors = np.random.default_rng(1).standard_normal((count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (id, path, status) VALUES (?, ?, 'done')",
            ((i + 1, f"/photos/{i}.jpg") for i in range(count)),
        )
        conn.executemany(
            "INSERT INTO faces (id, image_id, score, x1, y1, x2, y2, keypoints, cluster_id)"
            " VALUES (?, ?, 0.9, 0, 0, 1, 1, '[]', 1)",
            ((i + 1, i + 1) for i in range(count)),
        )
        conn.executemany(
            f"INSERT INTO {index.table} (rowid, embedding) VALUES (?, ?)",
            ((i + 1, vectors[i]) for i in range(count)),
        )
        conn.execute("UPDATE counters SET value = ? WHERE name = 'faces_changed'", (count,))
    db.close()


def test_sigterm_does_not_wait_for_a_whole_reclustering_and_keeps_it_due(run_server, tmp_path):
    data_dir = tmp_path / "data"
    seed_faces(data_dir, 60_000)  # their kNN graph, then their grouping, take tens of seconds here
    server = run_server(data_dir=data_dir, roots=[Path("/photos")])
    server.wait_ready()
    wait_until(lambda: "building the kNN graph" in server.output(), 10, "the long work under way")
    time.sleep(1)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    assert rows(data_dir, "SELECT value FROM counters WHERE name = 'faces_changed'") == [(60_000,)]


# -- the data dir's files ----------------------------------------------------------------------------------


def appliance_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_restore_is_refused_while_the_appliance_runs(run_server, tmp_path):
    server = run_server()
    client = server.wait_ready()
    backup = tmp_path / "backup.db"
    assert appliance_command("backup", str(backup), "--data-dir", str(server.data_dir)).returncode == 0
    assert client.post("/albums/create-album", json={"name": "Told"}).status_code == 201

    refused = appliance_command("restore", str(backup), "--data-dir", str(server.data_dir))
    assert refused.returncode != 0
    assert f"pid {server.process.pid}" in refused.stderr and "Traceback" not in refused.stderr
    assert [a["album_name"] for a in client.get("/albums/view-all").json()["albums"]] == ["Told"]

    second = run_server(data_dir=server.data_dir)
    assert second.process.wait(30) != 0, "a second server on the same data dir is refused too"
    assert "is running with the data dir" in second.output()

    server.stop()
    assert appliance_command("restore", str(backup), "--data-dir", str(server.data_dir)).returncode == 0


@pytest.mark.parametrize("content", ["", "\n", "short\n"])
def test_an_unusable_token_file_stops_startup_with_a_message(run_server, tmp_path, content):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / TOKEN_FILE).write_text(content)
    server = run_server("--host", "0.0.0.0", data_dir=data_dir)
    assert server.process.wait(30) != 0
    output = server.output()
    assert str(data_dir / TOKEN_FILE) in output and "delete it" in output and "Traceback" not in output


def test_the_token_file_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from appliance import datadir

    real_write = os.write

    def write_half_then_fail(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.EIO, "power cut")

    monkeypatch.setattr(datadir.os, "write", write_half_then_fail)
    with pytest.raises(OSError):
        datadir.stored_token(tmp_path)
    assert not (tmp_path / TOKEN_FILE).exists(), "half a token must never be the token"
    monkeypatch.setattr(datadir.os, "write", real_write)
    token, new = datadir.stored_token(tmp_path)
    assert new and len(token) >= 32 and (tmp_path / TOKEN_FILE).read_text() == token + "\n"
    assert datadir.stored_token(tmp_path) == (token, False)


def test_a_corrupt_database_stops_startup_with_a_message(run_server, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / DATABASE_FILE).write_bytes(b"this is not a database, it is forty-eight bytes." * 100)
    server = run_server(data_dir=data_dir)
    assert server.process.wait(30) != 0
    assert "cannot be used" in server.output() and "Traceback" not in server.output()


def test_a_backup_onto_the_live_database_is_refused(client):
    live = client.data_dir / DATABASE_FILE
    before = live.stat().st_ino
    refused = appliance_command("backup", str(live), "--data-dir", str(client.data_dir))
    assert refused.returncode != 0 and "is the database itself" in refused.stderr
    assert live.stat().st_ino == before


def test_a_database_from_a_newer_version_is_refused(run_server, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    Database(data_dir / DATABASE_FILE).close()
    conn = connect(data_dir / DATABASE_FILE)
    conn.execute("INSERT INTO schema_migrations (name) VALUES ('9999_from_the_future')")
    conn.close()
    server = run_server(data_dir=data_dir)
    assert server.process.wait(30) != 0
    assert "newer version" in server.output() and "Traceback" not in server.output()

    other = tmp_path / "other"
    refused = appliance_command("restore", str(data_dir / DATABASE_FILE), "--data-dir", str(other))
    assert refused.returncode != 0 and "newer version" in refused.stderr


# -- races -------------------------------------------------------------------------------------------------


def test_a_copy_whose_donor_is_deleted_meanwhile_is_not_stored_done(tmp_path):
    db = Database(tmp_path / "a.db")
    faces = faces_module.FaceIndex(128, 0.5)
    faces.open(db)
    with db.write() as conn:
        conn.execute(
            "INSERT INTO images (id, path, status, content_hash, fingerprint)"
            " VALUES (1, '/p/donor.jpg', 'done', 'h', 'f')"
        )
    jobs.enqueue(db, "images", [Path("/p/copy.jpg")])
    item = jobs.claim(db)
    with db.write() as conn:  # the donor is deleted between its lookup and the copy
        conn.execute("DELETE FROM images WHERE id = 1")
    with pytest.raises(ingest.DonorGone):
        ingest.store_copy(db, faces, item, ingest.FileFacts(1, 1, "h", "f"), donor_id=1)
    assert db.read().execute("SELECT status FROM images WHERE path = '/p/copy.jpg'").fetchone()[0] == "pending"
    assert db.read().execute("SELECT state FROM job_items").fetchone()[0] == "running"
    db.close()


# -- /health -----------------------------------------------------------------------------------------------


def test_health_without_the_token_says_only_the_status(start_appliance):
    token = "a-token-of-the-right-length"
    client = start_appliance(api_token=token)
    anonymous = client.session.get(client.url + "/health", headers={"Authorization": ""}, timeout=10)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    full = client.get("/health").json()
    assert full["status"] == "ok" and "worker" in full and "disk" in full


def test_health_reports_what_runs_and_the_disk(client):
    health = client.get("/health").json()
    assert health["problems"] == [] and health["background"] == []
    assert health["disk"]["free_bytes"] > 0 and health["disk"]["full"] is False
    assert health["queue"] == {"queued": 0, "running": 0, "done": 0, "failed": 0}
