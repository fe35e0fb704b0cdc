"""End-to-end ingest throughput on 12-megapixel JPEGs, against the bound the CPU work allows.

    python bench/ingest.py [--images 48] [--detectors yolov8n,ssd_mobilenet_v1]

1. Makes a folder of 4000x3000 JPEGs from the test photos (each scaled up and cropped differently).
2. Measures, alone on one thread, the CPU time one image needs: decode (as the pipeline decodes) plus every
   model invocation (the detector with its pre- and post-processing), in core-milliseconds.
3. Bound: cores / that time, as images/second.
4. Starts `appliance serve`, adds the folder, and times it until the job is finished: images/second end to
   end, and the server's peak RSS. Prints the ratio end-to-end / bound.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image

from appliance.config import Settings
from appliance.pipeline import PipelineFactory, decode

PROJECT = Path(__file__).resolve().parent.parent
PHOTOS = PROJECT.parent / "shared" / "testdata" / "photos"
MODELS = PROJECT.parent / "shared" / "models"
SIZE = (4000, 3000)


def make_photos(folder: Path, count: int) -> list[Path]:
    sources = sorted(p for p in PHOTOS.iterdir() if p.name != "empty.png")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as source:
            image = source.convert("RGB")
        # A different crop each time, so every file has its own content hash.
        w, h = image.size
        inset = (i // len(sources)) * 0.03
        image = image.crop((int(w * inset), int(h * inset), w - int(w * inset / 2), h - int(h * inset / 2)))
        image = image.resize(SIZE, Image.Resampling.BICUBIC)
        path = folder / f"photo_{i:03d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def cpu_ms_per_image(paths: list[Path], detector: str, data_dir: Path) -> tuple[float, float]:
    """Median core-milliseconds of decode and of the detector per image, measured alone."""
    settings = Settings(detector=detector, models_dir=MODELS, data_dir=data_dir, library_roots=[data_dir])
    pipeline = PipelineFactory(settings)()
    decode_ms, detect_ms = [], []
    for path in paths:
        data = path.read_bytes()
        start = time.process_time()
        decoded = decode(data, settings.max_image_pixels, settings.analysis_size)
        middle = time.process_time()
        pipeline.detector.detect(decoded.pixels, pipeline.object_threshold)
        end = time.process_time()
        decode_ms.append((middle - start) * 1000)
        detect_ms.append((end - middle) * 1000)
    return statistics.median(decode_ms), statistics.median(detect_ms)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def end_to_end(folder: Path, detector: str, data_dir: Path) -> tuple[float, float, int]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--port", str(port), "--data-dir", str(data_dir)]
        + ["--library-root", str(folder), "--models-dir", str(MODELS), "--detector", detector],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(base + "/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        started = time.perf_counter()
        job = requests.post(base + "/images/add-folder", json={"folder_path": str(folder)}, timeout=60).json()
        while not (progress := requests.get(f"{base}/images/jobs/{job['job_id']}", timeout=10).json())["finished"]:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        return progress["done"] / elapsed, peak_rss_mib(server.pid), progress["failed"]
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--detectors", default="yolov8n,ssd_mobilenet_v1")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        paths = make_photos(folder, args.images)
        megapixels = SIZE[0] * SIZE[1] / 1e6
        print(f"{len(paths)} JPEGs of {megapixels:.0f} MP ({SIZE[0]}x{SIZE[1]}), {cores} cores")
        print(
            f"{'detector':<18}{'decode':>8}{'detect':>8}{'bound':>9}{'e2e':>9}{'ratio':>7}{'peak RSS':>10}"
            f"\n{'':<18}{'core-ms':>8}{'core-ms':>8}{'img/s':>9}{'img/s':>9}{'':>7}{'MiB':>10}"
        )
        for detector in args.detectors.split(","):
            decode_ms, detect_ms = cpu_ms_per_image(paths[:12], detector, Path(tmp) / f"probe-{detector}")
            bound = cores * 1000 / (decode_ms + detect_ms)
            rate, rss, failed = end_to_end(folder, detector, Path(tmp) / f"data-{detector}")
            assert failed == 0, f"{failed} images failed"
            print(
                f"{detector:<18}{decode_ms:>8.1f}{detect_ms:>8.1f}{bound:>9.1f}{rate:>9.1f}"
                f"{rate / bound:>7.0%}{rss:>10.0f}"
            )


if __name__ == "__main__":
    main()
