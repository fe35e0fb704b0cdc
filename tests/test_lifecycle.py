"""What only a real process shows: kill -9 mid-ingest, SIGTERM, start-up refusals, leaks over restarts."""

from __future__ import annotations

import gc
import os
import signal
import stat
import threading
import time

import requests
from PIL import Image

from appliance.config import Settings
from appliance.datadir import DATABASE_FILE, TOKEN_FILE
from appliance.db import connect
from appliance.server import Appliance

from .conftest import PHOTOS


def make_noise_images(folder, count, size=(1200, 900)):
    """Photos-sized JPEGs of noise: slow enough to decode that a kill lands mid-queue."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"noise_{i:04d}.jpg"
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(path, quality=85)
        paths.append(path)
    return paths


def job_item_states(data_dir):
    conn = connect(data_dir / DATABASE_FILE)
    try:
        return conn.execute("SELECT path, state, error FROM job_items ORDER BY id").fetchall()
    finally:
        conn.close()


def done_items(data_dir) -> dict:
    conn = connect(data_dir / DATABASE_FILE)
    try:
        rows = conn.execute("SELECT id, attempts, finished_at FROM job_items WHERE state = 'done'").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}
    finally:
        conn.close()


def test_kill_9_mid_ingest_loses_nothing_and_does_nothing_twice(run_server, tmp_path):
    library = tmp_path / "library"
    good = make_noise_images(library, 120)
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    server = run_server()
    client = server.wait_ready()
    job_id = client.post("/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
    while client.get(f"/images/jobs/{job_id}").json()["done"] < 5:
        time.sleep(0.02)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    at_kill = job_item_states(server.data_dir)
    assert len(at_kill) == 121
    finished_at_kill = done_items(server.data_dir)
    assert 5 <= sum(state == "done" for _, state, _ in at_kill) < 121, "the kill must land mid-queue"

    client = run_server(data_dir=server.data_dir).wait_ready()
    final = client.wait_for_job(job_id)
    assert (final["total"], final["done"], final["failed"]) == (121, 120, 1)
    assert final["failures"][0]["path"] == str(library / "broken.jpg")
    assert final["failures"][0]["error"].startswith("Cannot decode")

    # nothing done before the kill was claimed or finished again (a claim counts an attempt)
    after = done_items(server.data_dir)
    assert {item: after[item] for item in finished_at_kill} == finished_at_kill
    states = job_item_states(server.data_dir)
    assert sorted(path for path, _, _ in states) == sorted(str(p) for p in [*good, library / "broken.jpg"])
    assert {state for _, state, _ in states} == {"done", "failed"}
    conn = connect(server.data_dir / DATABASE_FILE)
    rows = conn.execute("SELECT path, status, count(*) OVER (PARTITION BY path) FROM images").fetchall()
    conn.close()
    assert len(rows) == 121 and all(count == 1 for _, _, count in rows)
    assert client.get("/images/all-images").json()["images"] == sorted(str(p) for p in good)
    assert len(list((server.data_dir / "thumbnails").rglob("*.jpg"))) == 120


def test_sigterm_stops_cleanly_and_the_queue_resumes(run_server, tmp_path):
    library = tmp_path / "library"
    make_noise_images(library, 60)
    server = run_server()
    client = server.wait_ready()
    job_id = client.post("/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
    while client.get(f"/images/jobs/{job_id}").json()["done"] < 3:
        time.sleep(0.02)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    assert "stopped" in server.output()

    client = run_server(data_dir=server.data_dir).wait_ready()
    final = client.wait_for_job(job_id)
    assert (final["done"], final["failed"]) == (60, 0)


def test_beyond_loopback_a_token_is_generated_and_required(run_server, tmp_path):
    server = run_server("--host", "0.0.0.0")
    client = server.wait_ready()
    token_file = server.data_dir / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert str(token_file) in server.output()
    assert client.get("/albums/view-all").status_code == 401
    token = token_file.read_text().strip()
    assert client.get("/albums/view-all", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    server.stop()

    # a restart keeps the same token
    again = run_server("--host", "0.0.0.0", data_dir=server.data_dir)
    restarted = again.wait_ready()
    assert token_file.read_text().strip() == token
    assert restarted.get("/albums/view-all", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_invalid_settings_stop_startup_with_a_message(run_server):
    server = run_server("--api-token", "short")
    assert server.process.wait(30) != 0
    assert "api_token" in server.output() and "Traceback" not in server.output()


def test_env_and_config_file_configure_the_server(run_server, tmp_path):
    config = tmp_path / "appliance.toml"
    config.write_text('api_token = "from-the-config-file-1234"\nmax_body_bytes = 4096\n')
    server = run_server("--config", str(config), env={"APPLIANCE_MAX_BODY_BYTES": "2048"})
    client = server.wait_ready()
    assert client.get("/albums/view-all").status_code == 401
    client.session.headers["Authorization"] = "Bearer from-the-config-file-1234"
    assert client.get("/albums/view-all").status_code == 200
    # the environment wins over the file
    body = {"paths": [str(PHOTOS / "cat.png")] * 80}  # about 3.3 kB: over 2048, under 4096
    assert client.post("/images/images", json=body).status_code == 413


def test_start_stop_leaves_no_threads_or_files_behind(tmp_path):
    def counts():
        gc.collect()  # objects left by earlier tests may still hold files
        return threading.active_count(), len(os.listdir("/proc/self/fd"))

    def cycle(i):
        settings = Settings(port=0, data_dir=tmp_path / f"data{i % 2}", library_roots=[PHOTOS], server_threads=2)
        appliance = Appliance(settings)
        appliance.start()
        assert requests.get(f"http://127.0.0.1:{appliance.port}/albums/view-all", timeout=10).status_code == 200
        appliance.stop()

    cycle(0)
    before = counts()
    for i in range(15):
        cycle(i)
    time.sleep(0.2)
    threads, files = counts()
    assert threads <= before[0] and files <= before[1], (before, (threads, files))
