"""Latency of the two big listing routes with a large synthetic library and concurrent clients.

    python bench/api.py [--images 20000] [--albums 50] [--clients 16] [--requests 40]

Seeds a fresh data dir with synthetic image and album rows, starts `appliance serve` in a subprocess on
a free loopback port, and has N client threads (one keep-alive connection each) call each route in turn.
Prints p50/p90/p99 latency, throughput, response size and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
from server import peak_rss_mib, running_server

from appliance.datadir import DATABASE_FILE
from appliance.db import Database


def seed(data_dir: Path, images: int, albums: int, per_album: int) -> None:
    data_dir.mkdir(parents=True)
    db = Database(data_dir / DATABASE_FILE)
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (id, path, size, mtime_ns, content_hash, width, height, status)"
            " VALUES (?, ?, 1000, 0, ?, 4000, 3000, 'done')",
            ((i, f"/photos/{i % 97:02d}/IMG_{i:06d}.jpg", f"{i:064x}") for i in range(1, images + 1)),
        )
        for a in range(1, albums + 1):
            conn.execute("INSERT INTO albums (id, name, description) VALUES (?, ?, 'bench')", (a, f"Album {a}"))
            conn.executemany(
                "INSERT INTO album_images VALUES (?, ?, ?)",
                ((a, (a * 7919 + k * 31) % images + 1, k) for k in range(per_album)),
            )
    db.close()


def hammer(url: str, clients: int, per_client: int, cold: bool) -> tuple[list[float], int, float]:
    """`cold`: every request has its own URL (an ignored parameter), so no cached body can serve it."""
    latencies: list[float] = []
    sizes: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        session = requests.Session()
        mine = []
        for i in range(per_client):
            start = time.perf_counter()
            response = session.get(url, params={"nocache": f"{number}-{i}"} if cold else None, timeout=60)
            mine.append(time.perf_counter() - start)
            response.raise_for_status()
            sizes.append(len(response.content))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, max(sizes), time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--albums", type=int, default=50)
    parser.add_argument("--per-album", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40, help="requests per client per route")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        seed(data_dir, args.images, args.albums, args.per_album)
        with running_server(data_dir, "--library-root", tmp) as (base, server):
            print(
                f"{args.images} images, {args.albums} albums x {args.per_album} photos;"
                f" {args.clients} clients x {args.requests} requests per route"
            )
            print(f"{'route':<22}{'cache':<7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'req/s':>9}{'body kB':>9}")
            for route in ("/images/all-images", "/albums/view-all"):
                requests.get(base + route, timeout=60).raise_for_status()  # warm up
                for cold in (True, False):
                    latencies, size, elapsed = hammer(base + route, args.clients, args.requests, cold)
                    ms = [v * 1000 for v in latencies]
                    print(
                        f"{route:<22}{'miss' if cold else 'hit':<7}"
                        + "".join(f"{percentile(ms, q):>9.1f}" for q in (50, 90, 99))
                        + f"{len(ms) / elapsed:>9.1f}{size / 1024:>9.0f}"
                    )
            print(f"server peak RSS: {peak_rss_mib(server.pid):.1f} MiB")


if __name__ == "__main__":
    main()
