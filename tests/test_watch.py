"""The index follows the disk, over real HTTP with real watched folders: files that come, change, move and
go; moves that keep names and albums; half-copied files; bursts; restarts; a change of models."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from appliance import watch

from .conftest import FACES, PHOTOS, make_images
from .test_unattended import rows, wait_until


def watched(start_appliance, library: Path, **settings):
    return start_appliance(watch=True, library_roots=[library], **settings)


def listed(client) -> list[str]:
    return client.get("/images/all-images").json()["images"]


def status_of(client, path: Path) -> str | None:
    response = client.get("/images/class-ids", params={"path": str(path)})
    return response.json()["status"] if response.status_code == 200 else None


def idle(client) -> bool:
    queue = client.get("/health").json()["queue"]
    return queue["queued"] + queue["running"] == 0


def person_of(client, path: Path) -> int:
    (face,) = client.get("/tag/faces", params={"path": str(path)}).json()["faces"]
    return face["person_id"]


def test_a_photo_copied_in_is_listed_and_analysed_within_seconds(start_appliance, library):
    client = watched(start_appliance, library)
    started = time.monotonic()
    shutil.copy(PHOTOS / "cat.png", library / "cat.png")
    wait_until(lambda: status_of(client, library / "cat.png") == "done", 10, "analysed")
    assert time.monotonic() - started < 10
    assert listed(client) == [str(library / "cat.png")]
    assert "cat" in client.get("/images/class-ids", params={"path": str(library / "cat.png")}).json()["classes"]


def test_a_deleted_photo_leaves_the_library_its_albums_and_people(start_appliance, library):
    client = watched(start_appliance, library)
    for name in ("amir_khan.png", "cat.png"):
        shutil.copy(PHOTOS / name, library / name)
    wait_until(lambda: all(status_of(client, library / n) == "done" for n in ("amir_khan.png", "cat.png")), 20)
    client.post("/albums/create-album", json={"name": "Mixed"})
    paths = [str(library / "amir_khan.png"), str(library / "cat.png")]
    client.post("/albums/add-multiple-to-album", json={"album_name": "Mixed", "paths": paths})
    client.put(f"/tag/people/{person_of(client, library / 'amir_khan.png')}", json={"name": "Aamir"})

    (library / "amir_khan.png").unlink()
    wait_until(lambda: listed(client) == [str(library / "cat.png")], 10, "gone from all-images")
    album = client.get("/albums/view-album", params={"album_name": "Mixed"}).json()["photos"]
    assert album == [str(library / "cat.png")]
    assert client.get("/tag/people").json()["people"] == []
    assert client.get("/tag/clusters").json()["clusters"] == {}
    for route in ("/images/original", "/images/thumbnail", "/images/class-ids"):
        response = client.get(route, params={"path": paths[0]})
        assert response.status_code == 404 and "no longer on disk" in response.json()["detail"], route


def test_a_gone_file_is_a_404_even_before_the_watcher_notices(client, library):
    shutil.copy(PHOTOS / "cat.png", library / "cat.png")
    client.ingest(library)  # watching is off here
    (library / "cat.png").unlink()
    for route in ("/images/original", "/images/thumbnail"):
        response = client.get(route, params={"path": str(library / "cat.png")})
        assert response.status_code == 404 and "no longer on disk" in response.json()["detail"], route


def prepare_trip(client, library: Path) -> dict:
    """A folder with a named person's photos and an album of all of it; what a rename must keep."""
    trip = library / "trip"
    trip.mkdir()
    for name in ("amir_khan.png", "three_khans.png", "cat.png"):
        shutil.copy(PHOTOS / name, trip / name)
    wait_until(lambda: len(listed(client)) == 3 and all(status_of(client, Path(p)) == "done" for p in listed(client)))
    wait_until(lambda: idle(client))
    aamir = person_of(client, trip / "amir_khan.png")
    assert client.put(f"/tag/people/{aamir}", json={"name": "Aamir"}).status_code == 200
    client.post("/albums/create-album", json={"name": "Trip"})
    order = [trip / "cat.png", trip / "amir_khan.png", trip / "three_khans.png"]
    client.post("/albums/add-multiple-to-album", json={"album_name": "Trip", "paths": [str(p) for p in order]})
    return {
        "aamir": aamir,
        "order": [p.name for p in order],
        "analysed": dict(rows(client.data_dir, "SELECT id, analysed_at FROM images")),
        "items": rows(client.data_dir, "SELECT count(*) FROM job_items")[0][0],
    }


def assert_trip_kept(client, before: dict, folder: Path) -> None:
    album = client.get("/albums/view-album", params={"album_name": "Trip"}).json()["photos"]
    assert album == [str(folder / name) for name in before["order"]]
    people = {p["person_id"]: p["name"] for p in client.get("/tag/people").json()["people"]}
    assert people[before["aamir"]] == "Aamir"
    assert person_of(client, folder / "amir_khan.png") == before["aamir"]
    now = dict(rows(client.data_dir, "SELECT id, analysed_at FROM images"))
    assert {image: now.get(image) for image in before["analysed"]} == before["analysed"], "analysed again"


def test_a_renamed_folder_keeps_people_names_and_albums_without_analysing(start_appliance, library):
    client = watched(start_appliance, library)
    before = prepare_trip(client, library)
    os.rename(library / "trip", library / "journey")
    wait_until(lambda: listed(client) and all("/journey/" in p for p in listed(client)), 10, "renamed")
    time.sleep(watch.STABLE_SECONDS + 1)  # anything queued by the move would be by now
    assert_trip_kept(client, before, library / "journey")
    assert rows(client.data_dir, "SELECT count(*) FROM job_items")[0][0] == before["items"], "nothing was queued"


def test_a_folder_renamed_while_the_appliance_was_down_keeps_everything(start_appliance, library):
    client = watched(start_appliance, library)
    before = prepare_trip(client, library)
    client.appliance.stop()
    os.rename(library / "trip", library / "journey")
    # watching off: only the client's add-folder finds the new folder; its content claims the old images
    client = start_appliance(library_roots=[library])
    progress = client.ingest(library / "journey")
    assert (progress["done"], progress["failed"]) == (3, 0)
    assert listed(client) == sorted(str(library / "journey" / name) for name in before["order"])
    assert_trip_kept(client, before, library / "journey")


def test_the_reconcile_scan_finds_what_changed_while_the_appliance_was_down(start_appliance, library, monkeypatch):
    monkeypatch.setattr(watch, "FIRST_RECONCILE_SECONDS", 0)
    client = watched(start_appliance, library)
    before = prepare_trip(client, library)
    client.appliance.stop()
    os.rename(library / "trip", library / "journey")
    shutil.copy(PHOTOS / "bird.bmp", library / "bird.bmp")
    client = watched(start_appliance, library)
    expected = sorted([str(library / "bird.bmp")] + [str(library / "journey" / name) for name in before["order"]])
    wait_until(lambda: listed(client) == expected and idle(client), 30, "reconciled")
    assert status_of(client, library / "bird.bmp") == "done"
    assert_trip_kept(client, before, library / "journey")


def test_a_half_written_file_is_analysed_once_complete(start_appliance, library, tmp_path):
    client = watched(start_appliance, library)
    data = (PHOTOS / "zidane.jpg").read_bytes()
    with open(library / "zidane.jpg", "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(watch.STABLE_SECONDS - 1)  # a slow copy: still short of settling
        f.write(data[len(data) // 2 :])
    wait_until(lambda: status_of(client, library / "zidane.jpg") == "done", 20, "analysed")
    wait_until(lambda: idle(client))
    items = rows(client.data_dir, "SELECT state, error FROM job_items")
    assert items == [("done", None)], "analysed once, whole"
    assert {"person", "tie"} <= set(
        client.get("/images/class-ids", params={"path": str(library / "zidane.jpg")}).json()["classes"]
    )


def test_a_burst_of_a_thousand_files_is_queued_once_each(start_appliance, library, tmp_path):
    client = watched(start_appliance, library)
    sources = make_images(tmp_path / "camera", 1000)
    for source in sources:
        shutil.copy(source, library / source.name)
    wait_until(lambda: len(listed(client)) == 1000 and idle(client), 180, "all analysed")
    per_path = rows(client.data_dir, "SELECT path, count(*), min(state) FROM job_items GROUP BY path")
    assert len(per_path) == 1000
    assert all(count == 1 and state == "done" for _, count, state in per_path)


@pytest.fixture
def few_inotify_watches():
    limit = Path("/proc/sys/fs/inotify/max_user_watches")
    saved = limit.read_text()
    limit.write_text("1\n")
    yield
    limit.write_text(saved)


def test_when_inotify_cannot_watch_the_scan_takes_over_and_says_so(
    start_appliance, library, caplog, few_inotify_watches
):
    (library / "a" / "b").mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        client = watched(start_appliance, library)
        health = wait_until(lambda: (h := client.get("/health").json())["status"] == "degraded" and h, 10)
    assert health["watch"]["mode"] in ("partly watched", "scan only")
    assert any("max_user_watches" in problem for problem in health["problems"])
    assert "max_user_watches" in caplog.text


def vector_tables(client) -> set[str]:
    sql = "SELECT name FROM sqlite_master WHERE name GLOB 'face_embeddings_[0-9]*' AND sql LIKE 'CREATE VIRTUAL%'"
    return {row[0] for row in rows(client.data_dir, sql)}


def test_a_new_embedder_analyses_everything_again_and_keeps_people(start_appliance, library, caplog):
    for source in [*FACES.iterdir(), PHOTOS / "amir_khan.png", PHOTOS / "three_khans.png"]:
        shutil.copy(source, library / source.name)
    client = start_appliance(library_roots=[library])
    client.ingest(library)
    groups = sorted(sorted(paths) for paths in client.get("/tag/clusters").json()["clusters"].values())
    aamir = person_of(client, library / "amir_khan.png")
    client.put(f"/tag/people/{aamir}", json={"name": "Aamir"})
    client.appliance.stop()

    with caplog.at_level(logging.INFO):
        client = start_appliance(library_roots=[library], embedder="mobilefacenet_192d")
        job = client.get("/health").json()["reanalysis"]
        assert job["total"] == 12
        assert client.wait_for_job(job["job_id"], timeout=120)["done"] == 12
        wait_until(lambda: client.get("/health").json()["reanalysis"] is None)
        wait_until(lambda: vector_tables(client) == {"face_embeddings_192"}, 20, "the old vector table dropped")
    assert sorted(sorted(paths) for paths in client.get("/tag/clusters").json()["clusters"].values()) == groups
    people = {p["person_id"]: p["name"] for p in client.get("/tag/people").json()["people"]}
    assert people[aamir] == "Aamir" and person_of(client, library / "amir_khan.png") == aamir
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
