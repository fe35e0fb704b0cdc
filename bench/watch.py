"""Following the disk: how soon a photo that lands in a watched root is analysed, and what a reconcile costs.

    python bench/watch.py [--files 1000] [--scan-files 100000]

1. Starts `appliance serve` watching an empty library root and copies N photos into it (1280x960 JPEGs made
   from the test photos), as fast as one thread can. For each file: the time from its copy being complete to
   its analysis being stored (analysed_at in the database). Prints p50/p99 and the throughput.
2. Makes a root of M files (empty .jpg files in 100 folders) that the index already holds unchanged, and times
   one reconcile scan of it (nothing to do: the usual hourly case), then again after touching 1% of them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from server import peak_rss_mib, running_server

from appliance.datadir import DATABASE_FILE
from appliance.db import Database, connect
from appliance.faces import FaceIndex
from appliance.paths import LibraryRoots
from appliance.watch import LibraryWatch

PROJECT = Path(__file__).resolve().parent.parent
PHOTOS = PROJECT.parent / "shared" / "testdata" / "photos"
MODELS = PROJECT.parent / "shared" / "models"


def make_photos(folder: Path, count: int) -> list[Path]:
    sources = [Image.open(p).convert("RGB").resize((1280, 960)) for p in sorted(PHOTOS.iterdir())]
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        image = sources[i % len(sources)].copy()
        image.putpixel((i % 1280, i // 1280 % 960), (i % 256, 0, 0))  # each one its own content
        paths.append(folder / f"IMG_{i:05d}.jpg")
        image.save(paths[-1], quality=85)
    return paths


def landing_latency(work: Path, count: int) -> None:
    staged = make_photos(work / "camera", count)
    library = work / "library"
    library.mkdir()
    data_dir = work / "data"
    options = ["--library-root", str(library), "--models-dir", str(MODELS), "--watch"]
    with running_server(data_dir, *options) as (base, server):
        landed: dict[str, float] = {}
        started = time.time()
        for source in staged:
            target = library / source.name
            shutil.copy(source, target)
            landed[str(target)] = time.time()
        copied = time.time() - started
        while True:
            queue = requests.get(base + "/health", timeout=30).json()["queue"]
            done = (
                connect(data_dir / DATABASE_FILE)
                .execute("SELECT count(*) FROM images WHERE status = 'done'")
                .fetchone()[0]
            )
            if done == count and queue["queued"] + queue["running"] == 0:
                break
            time.sleep(0.5)
        finished = time.time() - started
        rss = peak_rss_mib(server.pid)
    conn = connect(data_dir / DATABASE_FILE)
    delays = [
        datetime.fromisoformat(analysed.replace("Z", "+00:00")).timestamp() - landed[path]
        for path, analysed in conn.execute("SELECT path, analysed_at FROM images")
    ]
    items = conn.execute("SELECT count(*) FROM job_items").fetchone()[0]
    conn.close()
    print(f"{count} photos copied into a watched root in {copied:.1f} s; all analysed after {finished:.1f} s")
    print(
        f"  landing -> done: p50 {np.percentile(delays, 50):.1f} s, p99 {np.percentile(delays, 99):.1f} s;"
        f" {count / finished:.1f} photos/s; {items} queue entries; server peak RSS {rss:.0f} MiB"
    )


def reconcile_cost(work: Path, count: int) -> None:
    root = work / "big"
    data_dir = work / "data-scan"
    data_dir.mkdir()
    paths = []
    for folder in range(100):
        (root / f"{folder:03d}").mkdir(parents=True)
        for i in range(count // 100):
            path = root / f"{folder:03d}" / f"IMG_{i:05d}.jpg"
            path.touch()
            paths.append(path)
    db = Database(data_dir / DATABASE_FILE)
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (path, size, mtime_ns, status, content_hash, fingerprint)"
            " VALUES (?, ?, ?, 'done', ?, 'f')",
            ((str(p), 0, p.stat().st_mtime_ns, f"{n:064x}") for n, p in enumerate(paths)),
        )
    faces = FaceIndex(128, 0.5)
    watch = LibraryWatch(db, faces, LibraryRoots([root]), lambda: None, data_dir / "thumbnails", False, 60)
    for label, touch in (("nothing changed", 0), ("1% touched", count // 100)):
        for path in paths[:touch]:
            os.utime(path, ns=(0, 10**18 + hash(path) % 10**9))
        started = time.perf_counter()
        watch.reconcile()
        elapsed = time.perf_counter() - started
        queued = db.read().execute("SELECT count(*) FROM job_items WHERE state = 'queued'").fetchone()[0]
        print(f"reconcile of {count} files, {label}: {elapsed:.2f} s ({queued} queued)")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--scan-files", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        landing_latency(Path(tmp), args.files)
        reconcile_cost(Path(tmp), args.scan_files)


if __name__ == "__main__":
    main()
