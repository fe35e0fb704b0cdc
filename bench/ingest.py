"""End-to-end ingest throughput on 12-megapixel JPEGs, against the bound the CPU work allows.

    python bench/ingest.py [--images 48] [--detectors yolov8n,ssd_mobilenet_v1]

1. Makes a folder of 4000x3000 JPEGs from the test photos (each scaled up and cropped differently).
2. Measures, alone on one thread, the CPU time one image needs, stage by stage: decode (as the pipeline
   decodes), objects (the detector with its pre- and post-processing), face detection, alignment and
   embedding (also per face), in core-milliseconds.
3. Bound: cores / that time, as images/second.
4. Starts `appliance serve`, adds the folder, and times it until the job is finished: images/second end to
   end, and the server's peak RSS. Prints the ratio end-to-end / bound.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image
from server import peak_rss_mib, running_server

from appliance.config import Settings
from appliance.decode import decode
from appliance.infer.embedder import align
from appliance.pipeline import PipelineFactory, faces_in_people

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


STAGES = ("decode", "objects", "face detection", "alignment", "embedding")


def cpu_ms_per_image(paths: list[Path], detector: str, data_dir: Path) -> dict[str, float]:
    """Mean core-milliseconds of each stage per image (alignment and embedding also per face), measured
    alone on this thread, after two warm-up images (the first invocations pack weights)."""
    settings = Settings(detector=detector, models_dir=MODELS, data_dir=data_dir, library_roots=[data_dir])
    pipeline = PipelineFactory(settings)()
    totals = dict.fromkeys(STAGES, 0.0)
    faces = 0

    def timed(stage: str, work, *args):
        start = time.process_time()
        result = work(*args)
        totals[stage] += (time.process_time() - start) * 1000
        return result

    def detect_faces(image, objects):
        found = pipeline.face_detector.detect(image)
        return found + faces_in_people(pipeline.face_detector, image, objects, found)

    for warm_up in paths[:2]:
        with open(warm_up, "rb") as file:
            pipeline.analyse(file, "0" * 64)
    totals = dict.fromkeys(STAGES, 0.0)
    paths = paths[2:]
    for path in paths:
        with open(path, "rb") as file:
            decoded = timed("decode", decode, file, settings.max_image_pixels, settings.analysis_size, pipeline.budget)
        objects = timed("objects", pipeline.detector.detect, decoded.pixels, pipeline.object_threshold)
        found = timed("face detection", detect_faces, decoded.pixels, objects)
        crops = timed("alignment", lambda image, faces: [align(image, face) for face in faces], decoded.pixels, found)
        timed("embedding", pipeline.embedder.embed, crops)
        faces += len(found)
    per_image = {stage: total / len(paths) for stage, total in totals.items()}
    per_image["faces per image"] = faces / len(paths)
    per_image["alignment per face"] = totals["alignment"] / max(faces, 1)
    per_image["embedding per face"] = totals["embedding"] / max(faces, 1)
    return per_image


def end_to_end(folder: Path, detector: str, data_dir: Path, workers: int) -> tuple[float, float, int]:
    options = ["--library-root", str(folder), "--models-dir", str(MODELS), "--detector", detector]
    with running_server(data_dir, *options, "--ingest-workers", str(workers)) as (base, server):
        started = time.perf_counter()
        job = requests.post(base + "/images/add-folder", json={"folder_path": str(folder)}, timeout=60).json()
        while not (progress := requests.get(f"{base}/images/jobs/{job['job_id']}", timeout=10).json())["finished"]:
            time.sleep(0.25)  # polling costs the server CPU too: not too often
        elapsed = time.perf_counter() - started
        return progress["done"] / elapsed, peak_rss_mib(server.pid), progress["failed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--detectors", default="yolov8n,ssd_mobilenet_v1")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the server's ingest_workers")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        paths = make_photos(folder, args.images)
        megapixels = SIZE[0] * SIZE[1] / 1e6
        print(f"{len(paths)} JPEGs of {megapixels:.0f} MP ({SIZE[0]}x{SIZE[1]}), {cores} cores")
        for detector in args.detectors.split(","):
            # Alone before and after the end-to-end run, averaged: this shared machine drifts.
            before = cpu_ms_per_image(paths[:22], detector, Path(tmp) / f"probe-{detector}")
            rate, rss, failed = end_to_end(folder, detector, Path(tmp) / f"data-{detector}", args.workers)
            after = cpu_ms_per_image(paths[:22], detector, Path(tmp) / f"probe-{detector}")
            stages = {stage: (before[stage] + after[stage]) / 2 for stage in before}
            print(f"\n{detector}: core-ms per image, measured alone on one thread (before / after the run)")
            for stage, value in stages.items():
                print(f"  {stage:<20}{value:>8.2f}   ({before[stage]:.2f} / {after[stage]:.2f})")
            work = sum(stages[s] for s in STAGES)
            bound = cores * 1000 / work
            assert failed == 0, f"{failed} images failed"
            print(
                f"  bound {bound:.1f} img/s ({work:.1f} core-ms / {cores} cores); end to end {rate:.1f} img/s;"
                f" ratio {rate / bound:.0%}; {args.workers} ingest workers; server peak RSS {rss:.0f} MiB"
            )


if __name__ == "__main__":
    main()
