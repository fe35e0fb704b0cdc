"""The model manifest, start-up checks of model files, and choosing the accelerator."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from appliance.infer import runtime
from appliance.infer.detector import labels_from_model
from appliance.models import ModelError, load_manifest, sha256_of

from .conftest import MODELS

MANIFEST = load_manifest()


def test_manifest_matches_the_shared_model_files():
    for spec in MANIFEST.values():
        assert sha256_of(MODELS / spec.file) == spec.sha256, spec.name
        if spec.edgetpu_file:
            assert sha256_of(MODELS / spec.edgetpu_file) == spec.edgetpu_sha256
        assert spec.licence and spec.input and spec.output


def test_class_names_come_from_the_model_files():
    yolo = labels_from_model(MODELS / MANIFEST["yolov8n"].file)
    ssd = labels_from_model(MODELS / MANIFEST["ssd_mobilenet_v1"].file)
    assert len(yolo) == 80 and yolo[0] == "person" and yolo[15] == "cat"
    assert len(ssd) == 90 and ssd[0] == "person" and ssd[16] == "cat"


def serve_output(run_server, *args: str) -> tuple[int, str]:
    server = run_server(*args)
    code = server.process.wait(60)
    return code, server.output()


def test_missing_model_stops_startup_naming_the_file(run_server, tmp_path):
    code, output = serve_output(run_server, "--models-dir", str(tmp_path / "empty"))
    assert code != 0
    assert "model file missing" in output and "detect/yolov8n_coco_full_int8.tflite" in output
    assert "Traceback" not in output


def test_corrupt_model_stops_startup_naming_the_file(run_server, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS, models)
    ssd = models / MANIFEST["ssd_mobilenet_v1"].file
    ssd.chmod(0o644)
    data = bytearray(ssd.read_bytes())
    data[1000] ^= 0xFF
    ssd.write_bytes(bytes(data))
    code, output = serve_output(run_server, "--models-dir", str(models), "--detector", "ssd_mobilenet_v1")
    assert code != 0
    assert "does not match the manifest" in output and str(ssd) in output


def test_edgetpu_required_but_absent_stops_startup(run_server):
    code, output = serve_output(run_server, "--accelerator", "edgetpu")
    assert code != 0
    assert "no Edge TPU found" in output and "set accelerator = cpu" in output


def test_auto_falls_back_to_the_cpu_with_one_log_line(run_server):
    server = run_server("--accelerator", "auto")
    client = server.wait_ready()
    assert client.get("/health").json()["models"]["accelerators"] == {
        "yolov8n": "cpu",
        "blazeface_full_range": "cpu",
        "mobilefacenet_128d": "cpu",
    }
    assert server.output().count("no Edge TPU") == 1


def test_models_cli(tmp_path):
    listing = subprocess.run(
        [sys.executable, "-m", "appliance", "models", "list", "--models-dir", str(MODELS)],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0
    assert listing.stdout.count(" ok ") == len(MANIFEST)
    fetched = subprocess.run(
        [sys.executable, "-m", "appliance", "models", "fetch", "--models-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fetched.returncode == 1
    assert "Traceback" not in fetched.stderr
    assert "no public download; copy detect/yolov8n_coco_full_int8.tflite" in fetched.stdout
    assert "download failed" in fetched.stdout  # no network here: a clear line, not a traceback


class FakeEdgeTpu(runtime.CpuBackend):
    """Stands in for the delegate, which needs a device: only the choice of file and backend is tested."""

    accelerator = "edgetpu"

    def __init__(self, path, threads):
        self.path = path


def test_an_edge_tpu_is_used_for_models_that_have_a_compiled_variant(monkeypatch):
    monkeypatch.setattr(runtime, "edgetpu_problem", lambda: None)
    monkeypatch.setitem(runtime.BACKENDS, "edgetpu", FakeEdgeTpu)
    loader = runtime.ModelLoader(MODELS, "auto", threads=1)
    assert loader.prepare(MANIFEST["yolov8n"]) == "edgetpu"
    assert loader.prepare(MANIFEST["ssd_mobilenet_v1"]) == "cpu"
    backend = loader.open(MANIFEST["yolov8n"])
    assert isinstance(backend, FakeEdgeTpu) and backend.path.name == "yolov8n_coco_full_int8_edgetpu.tflite"
    assert loader.accelerators() == {"yolov8n": "edgetpu", "ssd_mobilenet_v1": "cpu"}
    # with accelerator = cpu the Edge TPU is never touched
    monkeypatch.setattr(runtime, "edgetpu_problem", lambda: pytest.fail("probed the Edge TPU"))
    assert runtime.ModelLoader(MODELS, "cpu", threads=1).prepare(MANIFEST["yolov8n"]) == "cpu"


def test_unknown_accelerator_is_refused():
    with pytest.raises(ModelError, match="unknown accelerator"):
        runtime.ModelLoader(MODELS, "gpu", threads=1)
