"""What the appliance says to a new user, on the command line and over HTTP: every sentence true and useful."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse

from PIL import Image

from appliance.cli import build_parser
from appliance.config import Settings

from .conftest import PHOTOS


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True, timeout=120)


def subcommand(name: str):
    return build_parser()._subparsers._group_actions[0].choices[name]


# -- the command line --------------------------------------------------------------------------------------


def test_every_setting_has_a_serve_flag_with_its_own_help():
    flags = {action.dest: action for action in subcommand("serve")._actions}
    for name in Settings.model_fields:
        assert name in flags, f"no flag for {name}"
        own_help = flags[name].help.split(" [env ")[0]
        assert len(own_help) > 10, name
    args = build_parser().parse_args(["serve", "--thumbnail-size", "100", "--keep-jobs-days", "3"])
    assert (args.thumbnail_size, args.keep_jobs_days) == (100, 3)


def test_a_backup_into_a_missing_folder_is_one_line_and_a_failure(tmp_path, client):
    result = cli("backup", str(tmp_path / "missing" / "b.db"), "--data-dir", str(client.data_dir))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr


def test_serve_and_doctor_say_the_same_about_a_missing_model(run_server, tmp_path):
    empty = tmp_path / "empty"
    server = run_server("--models-dir", str(empty))
    assert server.process.wait(60) != 0
    served = server.output()
    doctor = cli("doctor", "--models-dir", str(empty), "--library-root", str(PHOTOS), "--data-dir", str(tmp_path))
    failing = re.search(r"FAIL\s+model yolov8n\s+(.*)\n\s+fix: (.*)", doctor.stdout)
    assert failing, doctor.stdout
    problem, fix = failing.groups()
    assert f"{problem}: {fix}" in served


# -- over HTTP ---------------------------------------------------------------------------------------------


def test_the_thumbnail_of_a_failed_image_says_why(client, library):
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    client.ingest(library)
    response = client.get("/images/thumbnail", params={"path": str(library / "broken.jpg")})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "failed" in detail and "Cannot decode" in detail and "not been analysed" not in detail


def test_adding_a_folder_as_images_points_to_add_folder(client, library):
    response = client.post("/images/images", json={"paths": [str(library)]})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "folder" in detail and "/images/add-folder" in detail and "do not exist" not in detail


def test_a_wrong_token_is_told_apart_from_a_missing_one(start_appliance):
    client = start_appliance(api_token="the-right-token-123456")
    session = client.session
    missing = session.get(client.url + "/albums/view-all", headers={"Authorization": ""}, timeout=10).json()
    wrong = session.get(client.url + "/albums/view-all", headers={"Authorization": "Bearer wrong-token-1234"}).json()
    assert "needs the appliance's API token" in missing["detail"]
    assert "not this appliance's token" in wrong["detail"]


def test_one_image_is_singular(client):
    client.wait_for_job(client.post("/images/images", json={"paths": [str(PHOTOS / "cat.png")]}).json()["job_id"])
    client.post("/albums/create-album", json={"name": "One"})
    body = {"album_name": "One", "paths": [str(PHOTOS / "cat.png")]}
    assert client.post("/albums/add-multiple-to-album", json=body).json()["message"] == "Added 1 image to album 'One'"


def test_a_token_with_url_special_characters_works_from_the_cookie(start_appliance):
    token = "a+b/c=d+e/f=g+h/i=="
    client = start_appliance(api_token=token)
    client.wait_for_job(client.post("/images/images", json={"paths": [str(PHOTOS / "cat.png")]}).json()["job_id"])
    # what the page does: document.cookie = `appliance_token=${encodeURIComponent(token)}`
    cookie = "appliance_token=" + urllib.parse.quote(token, safe="")
    response = client.session.get(
        client.url + "/images/thumbnail",
        params={"path": str(PHOTOS / "cat.png")},
        headers={"Authorization": "", "Cookie": cookie},
        timeout=10,
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"


def test_rotated_photos_are_stored_with_their_upright_size(client, library):
    with Image.open(PHOTOS / "zidane.jpg") as photo:  # 1280x720
        exif = photo.getexif()
        for orientation in (1, 3, 6, 8):
            exif[0x0112] = orientation
            photo.save(library / f"zidane_{orientation}.jpg", exif=exif)
    client.ingest(library)
    for orientation, size in ((1, (1280, 720)), (3, (1280, 720)), (6, (720, 1280)), (8, (720, 1280))):
        stored = client.row(
            "SELECT width, height FROM images WHERE path = ?", str(library / f"zidane_{orientation}.jpg")
        )
        assert stored == size, orientation
