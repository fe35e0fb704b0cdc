"""Soak: what a device left alone meets. Kills, a full disk, memory bombs, idle connections; nothing lost.

    python bench/soak.py [--kills 6] [--images 150]      (the disk-full phase mounts a tmpfs: run as root)

1. kill -9, repeatedly, at a random moment during an ingest and a stream of album writes; then one last clean
   start. Prints albums acknowledged (201) but lost, paths analysed twice, items stuck in the queue.
2. Disk full: the data dir on a 30 MB tmpfs, filled during an ingest. Prints the answer to a write, /health's
   verdict, and the seconds from freeing space to ingest running again; lost or failed files.
3. Memory bombs: palette PNGs of 10950x10950 (116 kB each, 120 MP), 16-bit PNGs and a large noise PNG, with 2
   workers. Prints the server's peak RSS and /health latency (sampled every 100 ms) while they are analysed.
4. 200 idle and 200 half-sent connections: /health latency meanwhile.
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from server import free_port, peak_rss_mib

from appliance.datadir import DATABASE_FILE
from appliance.db import connect

MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models"


class Server:
    """`appliance serve` in a subprocess, killed or stopped at will."""

    def __init__(self, data_dir: Path, library: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--port", str(self.port), "--data-dir", str(data_dir), "--library-root", str(library)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", *args, "--models-dir", str(MODELS), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/health", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("the server did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def noise_photos(folder: Path, count: int, size=(1200, 900)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(folder / f"n{i:04d}.jpg", quality=80)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def drain(url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = requests.get(url + "/health", timeout=10).json()["queue"]
        if queue["queued"] + queue["running"] == 0:
            break
        time.sleep(0.5)
    return queue


def kills(work: Path, images: int, rounds: int) -> None:
    library, data_dir = work / "library", work / "data"
    noise_photos(library, images)
    acknowledged: list[str] = []
    for round_ in range(rounds):
        server = Server(data_dir, library)
        if round_ == 0:
            requests.post(server.url + "/images/add-folder", json={"folder_path": str(library)}, timeout=30)
        stop = threading.Event()

        def write_albums(url=server.url, round_=round_, stop=stop) -> None:
            n = 0
            while not stop.is_set():
                name = f"soak {round_}-{n}"
                try:
                    response = requests.post(url + "/albums/create-album", json={"name": name}, timeout=10)
                except requests.RequestException:
                    return
                if response.status_code == 201:
                    acknowledged.append(name)
                n += 1

        writer = threading.Thread(target=write_albums)
        writer.start()
        time.sleep(random.uniform(1.0, 4.0))
        server.kill()
        stop.set()
        writer.join()
    server = Server(data_dir, library)
    queue = drain(server.url, 600)
    albums = {a["album_name"] for a in requests.get(server.url + "/albums/view-all", timeout=30).json()["albums"]}
    server.stop()
    conn = connect(data_dir / DATABASE_FILE)
    twice = conn.execute(
        "SELECT count(*) FROM (SELECT path FROM job_items WHERE state = 'done'"
        " GROUP BY job_id, path HAVING count(*) > 1)"
    ).fetchone()[0]
    done = conn.execute("SELECT count(*) FROM images WHERE status = 'done'").fetchone()[0]
    conn.close()
    lost = [name for name in acknowledged if name not in albums]
    print(f"kill -9 x{rounds} during ingest of {images} photos and album writes:")
    print(f"  albums acknowledged {len(acknowledged)}, lost {len(lost)}")
    stuck = queue["queued"] + queue["running"]
    print(f"  photos done {done}/{images}, analysed twice {twice}, stuck in the queue {stuck}")


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


def disk_full(work: Path, images: int) -> None:
    mount = work / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], check=True)
    try:
        library = work / "library-disk"
        noise_photos(library, images)
        server = Server(mount / "data", library)
        job = requests.post(server.url + "/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
        time.sleep(2)
        filler = fill(mount)
        time.sleep(3)
        health = requests.get(server.url + "/health", timeout=10).json()
        statuses = set()
        for n in range(300):
            body = {"name": f"full {n}", "description": "x" * 9_000}
            statuses.add(requests.post(server.url + "/albums/create-album", json=body, timeout=10).status_code)
            if 507 in statuses:
                break
        filler.unlink()
        freed = time.monotonic()
        while requests.get(server.url + "/health", timeout=10).json()["status"] != "ok":
            time.sleep(0.1)
        resumed = time.monotonic() - freed
        final = None
        while not (final := requests.get(f"{server.url}/images/jobs/{job}", timeout=10).json())["finished"]:
            time.sleep(0.5)
        server.stop()
        print("disk full (30 MB tmpfs):")
        print(f"  /health while full: {health['status']}, free {health['disk']['free_bytes']} bytes")
        print(f"  album writes answered {sorted(statuses)}")
        print(f"  ok again {resumed:.1f} s after space was freed; files done {final['done']}, failed {final['failed']}")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def bombs(work: Path) -> None:
    library = work / "bombs"
    library.mkdir()
    for i in range(4):
        image = Image.new("P", (10950, 10950), i)
        image.putpalette([v for c in range(256) for v in (c, 255 - c, (c * 7) % 256)])
        image.info["transparency"] = 0
        image.save(library / f"palette_{i}.png", optimize=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        gray = (rng.integers(0, 65535, (4000, 6000), dtype=np.uint16)).astype(np.uint16)
        Image.fromarray(gray).save(library / f"gray16_{i}.png", compress_level=1)
    Image.fromarray(rng.integers(0, 256, (6000, 8000, 3), dtype=np.uint8)).save(library / "noise.png", compress_level=1)
    server = Server(work / "data-bombs", library, "--ingest-workers", "2")
    health_ms: list[float] = []
    job = requests.post(server.url + "/images/add-folder", json={"folder_path": str(library)}).json()["job_id"]
    started = time.monotonic()
    while True:
        t = time.perf_counter()
        requests.get(server.url + "/health", timeout=30)
        health_ms.append((time.perf_counter() - t) * 1000)
        progress = requests.get(f"{server.url}/images/jobs/{job}", timeout=30).json()
        if progress["finished"]:
            break
        time.sleep(0.1)
    rss = peak_rss_mib(server.process.pid)
    server.stop()
    print(f"memory bombs ({progress['total']} files, 2 workers, {time.monotonic() - started:.0f} s):")
    print(f"  done {progress['done']}, failed {progress['failed']}: {[f['error'][:60] for f in progress['failures']]}")
    print(f"  server peak RSS {rss:.0f} MiB")
    print(
        f"  /health p50 {percentile(health_ms, 50):.0f} ms, p99 {percentile(health_ms, 99):.0f} ms,"
        f" max {max(health_ms):.0f} ms"
    )


def idle_connections(work: Path) -> None:
    library = work / "empty"
    library.mkdir()
    server = Server(work / "data-idle", library)
    held = []
    for n in range(400):
        sock = socket.create_connection(("127.0.0.1", server.port))
        if n % 2:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
        held.append(sock)
    latencies = []
    for _ in range(50):
        t = time.perf_counter()
        requests.get(server.url + "/health", timeout=60)
        latencies.append((time.perf_counter() - t) * 1000)
    for sock in held:
        sock.close()
    server.stop()
    print("200 idle + 200 half-sent connections:")
    print(f"  /health p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--skip", action="append", default=[], choices=["kills", "disk", "bombs", "idle"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        if "kills" not in args.skip:
            kills(work, args.images, args.kills)
        if "disk" not in args.skip:
            disk_full(work, 40)
        if "bombs" not in args.skip:
            bombs(work)
        if "idle" not in args.skip:
            idle_connections(work)


if __name__ == "__main__":
    main()
