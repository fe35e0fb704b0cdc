"""The /images routes and the ingest queue over real HTTP, on the real test photos and generated trees."""

from __future__ import annotations

import hashlib
import os
import shutil

from appliance.datadir import DATABASE_FILE

from .conftest import PHOTOS, make_images


def image_rows(client) -> dict:
    from appliance.db import connect

    conn = connect(client.data_dir / DATABASE_FILE)
    try:
        return {row["path"]: dict(row) for row in conn.execute("SELECT * FROM images")}
    finally:
        conn.close()


def test_all_test_photos_ingest(client):
    progress = client.ingest(PHOTOS)
    files = sorted(str(p) for p in PHOTOS.iterdir())
    assert progress["total"] == len(files) == 15
    assert progress["done"] == 15 and progress["failed"] == 0 and progress["progress"] == 1.0

    assert client.get("/images/all-images").json() == {"images": files}
    rows = image_rows(client)
    assert {row["status"] for row in rows.values()} == {"done"}
    cat, copy = rows[str(PHOTOS / "cat.png")], rows[str(PHOTOS / "cat (copy).png")]
    assert cat["content_hash"] == copy["content_hash"] == hashlib.sha256((PHOTOS / "cat.png").read_bytes()).hexdigest()
    assert (cat["width"], cat["height"]) == (copy["width"], copy["height"]) == (479, 473)
    assert (rows[str(PHOTOS / "zidane.jpg")]["width"], rows[str(PHOTOS / "zidane.jpg")]["height"]) == (1280, 720)
    # one thumbnail per content: the copy shares the cat's
    thumbnails = list((client.data_dir / "thumbnails").rglob("*.jpg"))
    assert len(thumbnails) == 14

    status = client.get("/images/class-ids", params={"path": str(PHOTOS / "empty.png")}).json()
    assert status["status"] == "done"
    assert set(client.get("/images/all-image-objects").json()["data"]) == set(files)


def test_broken_files_fail_alone_and_the_queue_goes_on(client, library):
    make_images(library, 3)
    good = (PHOTOS / "zidane.jpg").read_bytes()
    (library / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (library / "zero.png").write_bytes(b"")
    (library / "text.gif").write_text("not an image at all")
    shutil.copy(PHOTOS / "empty.png", library / "empty.png")

    progress = client.ingest(library)
    assert (progress["total"], progress["done"], progress["failed"]) == (7, 4, 3)
    reasons = {os.path.basename(f["path"]): f["error"] for f in progress["failures"]}
    assert set(reasons) == {"truncated.jpg", "zero.png", "text.gif"}
    assert "truncated" in reasons["truncated.jpg"]
    assert all(reason.startswith("Cannot decode the image") for reason in reasons.values())

    status = client.get("/images/class-ids", params={"path": str(library / "truncated.jpg")}).json()
    assert status["status"] == "failed" and "truncated" in status["error"]
    listed = client.get("/images/all-images").json()["images"]
    assert str(library / "empty.png") in listed and str(library / "truncated.jpg") not in listed


def test_decompression_bomb_fails_with_its_reason(start_appliance, library):
    client = start_appliance(max_image_pixels=1_000_000)
    from PIL import Image

    Image.new("1", (4000, 4000)).save(library / "bomb.png")  # 16 MP in a few kB
    progress = client.ingest(library)
    assert progress["failed"] == 1
    assert "decompression-bomb" in progress["failures"][0]["error"]


def test_add_folder_of_500_images(client, library):
    make_images(library / "a" / "b", 250)
    make_images(library / "c", 250, seed=1)
    response = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert response.status_code == 202
    body = response.json()
    assert body["queued"] == 500
    assert body["message"] == "Processing 500 images from the folder in the background"
    progress = client.wait_for_job(body["job_id"], timeout=300)
    assert (progress["done"], progress["failed"]) == (500, 0)
    assert len(client.get("/images/all-images").json()["images"]) == 500

    page = client.get("/images/all-images", params={"offset": 490, "limit": 20}).json()
    assert page["total"] == 500 and len(page["images"]) == 10


def test_unchanged_files_are_skipped_changed_ones_analysed_again(client, library):
    paths = make_images(library, 4)
    client.ingest(library)
    response = client.post("/images/add-folder", json={"folder_path": str(library)})
    assert response.status_code == 200
    assert response.json() == {"message": "No valid images found in the specified folder", "queued": 0}

    before = image_rows(client)
    from PIL import Image

    Image.new("RGB", (100, 30), "red").save(paths[0])
    progress = client.ingest(library)
    assert progress["total"] == 1 and progress["done"] == 1
    after = image_rows(client)
    changed = after[str(paths[0])]
    assert (changed["width"], changed["height"]) == (100, 30)
    assert changed["content_hash"] != before[str(paths[0])]["content_hash"]
    assert changed["analysed_at"] > before[str(paths[0])]["analysed_at"]
    # only the mtime changed: recognised by its hash, not analysed again
    os.utime(paths[1], ns=(0, 1_000_000_000))
    client.ingest(library)
    touched = image_rows(client)[str(paths[1])]
    assert touched["mtime_ns"] == 1_000_000_000
    assert touched["analysed_at"] == before[str(paths[1])]["analysed_at"]


def test_images_route_queues_the_given_files(client):
    paths = [str(PHOTOS / "bird.bmp"), str(PHOTOS / "cat.bmp"), str(PHOTOS / "bird.bmp")]
    response = client.post("/images/images", json={"paths": paths})
    assert response.status_code == 202
    body = response.json()
    assert body["message"] == "Images are being processed in the background"
    assert body["queued"] == 2
    assert client.wait_for_job(body["job_id"])["done"] == 2
    assert client.get("/images/all-images").json()["images"] == sorted(set(paths))


def test_images_route_refuses_missing_and_unsupported_files(client, library):
    (library / "notes.txt").write_text("hello")
    before = client.snapshot()
    response = client.post("/images/images", json={"paths": [str(PHOTOS / "bird.bmp"), str(library / "nope.jpg")]})
    assert response.status_code == 400
    assert str(library / "nope.jpg") in response.json()["detail"]
    response = client.post("/images/images", json={"paths": [str(library / "notes.txt")]})
    assert response.status_code == 400 and "not supported" in response.json()["detail"]
    assert client.snapshot() == before


def test_delete_image_removes_it_everywhere_but_on_disk(client):
    cat = str(PHOTOS / "cat.png")
    client.wait_for_job(client.post("/images/images", json={"paths": [cat]}).json()["job_id"])
    client.post("/albums/create-album", json={"name": "Pets"})
    client.post("/albums/add-multiple-to-album", json={"album_name": "Pets", "paths": [cat]})

    response = client.delete("/images/delete-image", json={"path": cat})
    assert response.status_code == 200 and "message" in response.json()
    assert client.get("/images/all-images").json()["images"] == []
    assert client.get("/albums/view-album", params={"album_name": "Pets"}).json()["photos"] == []
    assert client.get("/images/class-ids", params={"path": cat}).status_code == 404
    assert (PHOTOS / "cat.png").exists()

    before = client.snapshot()
    response = client.delete("/images/delete-image", json={"path": cat})
    assert response.status_code == 404
    assert client.snapshot() == before


def test_job_progress_errors(client):
    assert client.get("/images/jobs/" + "0" * 32).status_code == 404
    response = client.get("/images/jobs/doesnotexist")
    assert response.status_code == 404 and response.json()["detail"].startswith("There is no job doesnotexist")


def test_add_folder_refuses_files_and_missing_folders(client, library):
    before = client.snapshot()
    response = client.post("/images/add-folder", json={"folder_path": str(PHOTOS / "cat.png")})
    assert response.status_code == 400 and "not a folder" in response.json()["detail"]
    response = client.post("/images/add-folder", json={"folder_path": str(library / "missing")})
    assert response.status_code == 400
    assert client.snapshot() == before


def test_health_reports_versions_and_counts(start_appliance, library):
    client = start_appliance(ingest_workers=2)
    make_images(library, 3)
    client.ingest(library)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["version"]
    assert health["storage"]["sqlite_vec"].startswith("v") and health["storage"]["sqlite"].startswith("3.")
    assert health["images"] == {"pending": 0, "done": 3, "failed": 0}
    assert health["queue"] == {"queued": 0, "running": 0, "done": 3, "failed": 0}
    assert health["worker"] == {"workers": 2, "busy": []}
    assert health["problems"] == [] and health["background"] == []
    assert health["models"]["accelerators"] == {
        "yolov8n": "cpu",
        "blazeface_full_range": "cpu",
        "mobilefacenet_128d": "cpu",
    }
    assert health["models"]["runtime"] == "ai-edge-litert"


def test_a_file_gone_before_its_turn_fails_with_its_reason(tmp_path):
    from appliance import jobs
    from appliance.db import Database
    from appliance.faces import FaceIndex
    from appliance.ingest import ContentLocks, Ingest
    from appliance.paths import LibraryRoots

    db = Database(tmp_path / "a.db")
    gone = tmp_path / "gone.jpg"
    jobs.enqueue(db, "images", [gone])
    # the pipeline is never reached
    Ingest(db, FaceIndex(128, 0.5), None, ContentLocks(), LibraryRoots([tmp_path]), "f").run(jobs.claim(db))
    state, error = db.read().execute("SELECT state, error FROM job_items").fetchone()
    assert (state, error) == ("failed", "The file no longer exists.")
    assert db.read().execute("SELECT status, error FROM images").fetchone()[0] == "failed"
    db.close()
