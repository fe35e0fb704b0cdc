"""Deployment: the install script, the systemd unit, shell scripts, doctor, backup and restore."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from appliance.db import connect

from .conftest import MODELS, PHOTOS, PROJECT, ServerProcess

INSTALL = PROJECT / "deploy" / "install.sh"


def appliance_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True, **kwargs)


def install(prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["bash", str(INSTALL), "--prefix", str(prefix), "--no-systemd", "--models-dir", str(MODELS)]
    result = subprocess.run([*args, "--library-root", str(PHOTOS), *extra], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


class InstalledServer(ServerProcess):
    """`appliance serve` from an installed prefix, configured by the file the installer wrote."""

    def __init__(self, prefix: Path, port: int):
        self.port = port
        self.data_dir = prefix / "var" / "lib" / "appliance"
        self.log_path = prefix / f"server-{port}.log"
        self.log = open(self.log_path, "wb")
        command = [str(prefix / "venv" / "bin" / "appliance"), "serve", "--config", str(prefix / "etc" / "config.toml")]
        self.process = subprocess.Popen([*command, "--port", str(port)], stdout=self.log, stderr=subprocess.STDOUT)
        from .conftest import Client

        self.client = Client(f"http://127.0.0.1:{port}", self.data_dir)


def test_install_twice_then_serve_from_the_prefix(tmp_path):
    from .conftest import free_port

    prefix = tmp_path / "opt"
    first = install(prefix)
    config = prefix / "etc" / "config.toml"
    assert "writing" in first.stdout and config.is_file()
    assert (config.stat().st_mode & 0o777) == 0o600
    config.write_text(config.read_text() + "\n# kept by the owner\n")

    server = InstalledServer(prefix, free_port())
    client = server.wait_ready()
    assert client.post("/albums/create-album", json={"name": "Survives upgrades"}).status_code == 201
    assert server.stop() == 0

    second = install(prefix)
    assert f"keeping the existing config {config}" in second.stdout
    assert config.read_text().endswith("# kept by the owner\n")

    server = InstalledServer(prefix, free_port())
    client = server.wait_ready()
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert [a["album_name"] for a in client.get("/albums/view-all").json()["albums"]] == ["Survives upgrades"]
    server.stop()

    unit = prefix / "appliance.service"
    assert f"ExecStart={prefix}/venv/bin/appliance serve --config {config}" in unit.read_text()
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr


def test_dry_run_changes_nothing(tmp_path):
    result = install(tmp_path / "dry", "--dry-run")
    assert "+ python3 -m venv" in result.stdout and "pip install" in result.stdout
    assert not (tmp_path / "dry").exists()


def test_the_unit_is_hardened():
    unit = (PROJECT / "deploy" / "appliance.service").read_text()
    for line in [
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/appliance",
        "User=appliance",
        "StandardOutput=journal",
    ]:
        assert line in unit.splitlines(), line


def test_shellcheck_passes_on_every_shell_script():
    scripts = [PROJECT / ".ci" / "run", *sorted(PROJECT.rglob("*.sh"))]
    scripts = [s for s in scripts if ".venv" not in s.parts]
    assert INSTALL in scripts
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_doctor_names_missing_models_and_fails(tmp_path):
    result = appliance_cli("doctor", "--models-dir", str(tmp_path / "none"), "--library-root", str(PHOTOS))
    assert result.returncode == 1
    for name in ("detect/yolov8n_coco_full_int8.tflite", "face/blazeface_full_range.tflite", "embed/mobilefacenet"):
        assert name in result.stdout
    assert "fix: copy" in result.stdout and "Traceback" not in result.stderr


def test_doctor_passes_on_a_good_setup(tmp_path):
    result = appliance_cli(
        "doctor", "--models-dir", str(MODELS), "--library-root", str(PHOTOS), "--data-dir", str(tmp_path), "--port", "0"
    )
    assert result.returncode == 0, result.stdout
    assert "sqlite-vec" in result.stdout and "FAIL" not in result.stdout


def test_backup_while_ingesting_and_restore_into_a_fresh_data_dir(run_server, tmp_path):
    from .test_lifecycle import make_noise_images

    library = tmp_path / "library"
    make_noise_images(library, 80)
    server = run_server()
    client = server.wait_ready()
    client.post("/albums/create-album", json={"name": "Kept", "description": "in the backup"})
    client.wait_for_job(client.post("/images/images", json={"paths": [str(PHOTOS / "cat.png")]}).json()["job_id"])
    client.post("/albums/add-multiple-to-album", json={"album_name": "Kept", "paths": [str(PHOTOS / "cat.png")]})
    job_id = client.post("/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
    while client.get(f"/images/jobs/{job_id}").json()["done"] < 5:
        time.sleep(0.02)

    backup_file = tmp_path / "backup.db"
    result = appliance_cli("backup", str(backup_file), "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    assert "integrity check ok" in result.stdout
    assert client.get(f"/images/jobs/{job_id}").json()["queued"] > 0, "the backup must be taken mid-ingest"

    conn = connect(backup_file)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    backed_up = [r[0] for r in conn.execute("SELECT path FROM images WHERE status != 'failed' ORDER BY path")]
    conn.close()
    albums = client.get("/albums/view-all").json()
    server.stop(signal.SIGTERM)

    fresh = tmp_path / "fresh"
    result = appliance_cli("restore", str(backup_file), "--data-dir", str(fresh))
    assert result.returncode == 0, result.stderr
    restored = run_server(data_dir=fresh, roots=[library, PHOTOS]).wait_ready()
    assert restored.get("/albums/view-all").json() == albums
    assert restored.get("/images/all-images").json()["images"][: len(backed_up)] == backed_up
    # the restored queue carries on where the backup left it
    assert restored.wait_for_job(job_id)["done"] == 80


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"not a database")
    result = appliance_cli("restore", str(bogus), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1 and "restore failed" in result.stderr
    assert not (tmp_path / "data" / "appliance.db").exists()
