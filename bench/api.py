"""The large listings with a large library: one client, many clients on the same cores, and during an ingest.

    python bench/api.py [--images 100000] [--albums 100] [--per-album 1000] [--clients 16] [--requests 40]

Seeds a fresh data dir straight into the database (images under a temporary library root, a third of them with
objects, albums), starts `appliance serve --no-watch` (models loaded) in a subprocess on a free loopback port,
and asks with keep-alive connections that take no compression (on loopback gzip cannot pay; see the end).

A miss is made by a write to what the listing shows before each timed request (the write is not timed):
all-images and all-image-objects: DELETE /images/delete-image of an image in no album; view-all: PUT
/albums/edit-album-description of one album (that album renders again); "view-all, all albums": every
album's description touched in the database, so the whole body renders again. "fresh" is the number of
distinct ETags among the answers: bodies really rendered (requests after the same version share one).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from ingest import make_photos
from server import peak_rss_mib, running_server

from appliance.datadir import DATABASE_FILE
from appliance.db import Database

ALL_IMAGES, VIEW_ALL, OBJECTS = "/images/all-images", "/albums/view-all", "/images/all-image-objects"
PI_SLOWER = 3  # a Raspberry Pi 4 core against one of this machine's (the estimate)
LAN_BYTES_PER_S = 100e6 / 8


def seed(data_dir: Path, root: Path, images: int, albums: int, per_album: int, spare: int) -> list[str]:
    """The library; returns the paths of `spare` images in no album (what the misses delete)."""
    data_dir.mkdir(parents=True)
    db = Database(data_dir / DATABASE_FILE)
    paths = [f"{root}/{i % 97:02d}/IMG_{i:06d}.jpg" for i in range(images + 1)]
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (id, path, size, mtime_ns, content_hash, width, height, status)"
            " VALUES (?, ?, 1000, 0, ?, 4000, 3000, 'done')",
            ((i, paths[i], f"{i:064x}") for i in range(1, images + 1)),
        )
        conn.executemany(
            "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (?, ?, 0.8, 0.1, 0.1, 0.5, 0.5)",
            ((i, label) for i in range(1, images + 1, 3) for label in ("person", "dog")[: 1 + i % 2]),
        )
        in_albums = images - spare
        for a in range(1, albums + 1):
            conn.execute("INSERT INTO albums (id, name, description) VALUES (?, ?, 'bench')", (a, f"Album {a:03d}"))
            conn.executemany(
                "INSERT INTO album_images (album_id, image_id, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                ((a, (a * 7919 + k * 31) % in_albums + 1, k) for k in range(per_album)),
            )
    db.close()
    return paths[images - spare + 1 :]


class Client:
    """One keep-alive connection that takes no compression (http.client: the least CPU a client can spend
    reading a 3 MB body here, where clients and server share the cores)."""

    def __init__(self, base: str):
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)

    def ask(self, method: str, path: str, body: dict | None = None, **headers: str) -> http.client.HTTPResponse:
        headers = {"Accept-Encoding": "identity", **headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = self.conn.getresponse()
        response.body = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {response.body[:200]!r}")
        return response


class Writes:
    """The untimed writes that make the next request a miss."""

    def __init__(self, data_dir: Path, spare: list[str], albums: int):
        self.data_dir, self.albums = data_dir, albums
        self.spare = iter(spare)
        self.count = itertools.count()
        self.lock = threading.Lock()

    def before(self, client: Client, route: str, number: int) -> None:
        with self.lock:
            n = next(self.count)
            path = next(self.spare) if route != VIEW_ALL else None
        if path is not None:
            client.ask("DELETE", "/images/delete-image", {"path": path})
        else:
            album = {"name": f"Album {number % self.albums + 1:03d}", "description": f"bench {n}"}
            client.ask("PUT", "/albums/edit-album-description", album)

    def every_album(self, *_) -> None:
        conn = sqlite3.connect(self.data_dir / DATABASE_FILE, isolation_level=None, timeout=30)
        conn.execute("UPDATE albums SET description = description")
        conn.close()


def hammer(base: str, route: str, clients: int, per_client: int, write=None, conditional=False) -> dict:
    """Each client: its own keep-alive connection, `per_client` timed GETs (each after `write`, untimed)."""
    latencies: list[float] = []
    etags: set[str] = set()
    sizes: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        me = Client(base)
        held = me.ask("GET", route).getheader("ETag") if conditional else None
        mine = []
        for _ in range(per_client):
            if write is not None:
                write(me, route, number)
            start = time.perf_counter()
            response = me.ask("GET", route, **({"If-None-Match": held} if held else {}))
            mine.append(time.perf_counter() - start)
            assert response.status == (304 if held else 200), response.status
            with lock:
                sizes.append(len(response.body))
                etags.add(response.getheader("ETag", ""))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ms = [v * 1000 for v in latencies]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "n": len(ms), "kb": max(sizes) / 1024,
            "fresh": len(etags)}  # fmt: skip


def churn(base: str, folder: Path, clients: int) -> dict[str, dict]:
    """N clients asking for the three listings in turn while an ingest of `folder` runs, until it is done."""
    latencies: dict[str, list[float]] = {route: [] for route in (ALL_IMAGES, VIEW_ALL, OBJECTS)}
    etags: dict[str, set[str]] = {route: set() for route in latencies}
    lock = threading.Lock()
    job = Client(base).ask("POST", "/images/add-folder", {"folder_path": str(folder)})
    job_id = json.loads(job.body)["job_id"]
    done = threading.Event()

    def client(number: int) -> None:
        me = Client(base)
        for route in itertools.islice(itertools.cycle(latencies), number, None):
            if done.is_set():
                return
            start = time.perf_counter()
            answer = me.ask("GET", route)
            elapsed = time.perf_counter() - start
            with lock:
                latencies[route].append(elapsed * 1000)
                etags[route].add(answer.getheader("ETag", ""))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    watcher = Client(base)
    while not json.loads(watcher.ask("GET", f"/images/jobs/{job_id}").body)["finished"]:
        time.sleep(0.2)
    took = time.perf_counter() - started
    done.set()
    for thread in threads:
        thread.join()
    progress = json.loads(watcher.ask("GET", f"/images/jobs/{job_id}").body)
    print(f"(ingest of {progress['done']} 12 MP JPEGs, {progress['failed']} failed, took {took:.1f} s meanwhile)")
    return {
        route: {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "n": len(ms), "fresh": len(etags[route])}
        for route, ms in latencies.items()
    }


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def row(label: str, mode: str, result: dict) -> None:
    size = f"{result['kb']:>9.0f}" if "kb" in result else f"{'':>9}"
    print(f"{label:<30}{mode:<7}{result['p50']:>9.1f}{result['p99']:>9.1f}{result['n']:>6}{result['fresh']:>7}{size}")


def gzip_cost(base: str) -> None:
    """What gzip costs the server's CPU (once per version: the compressed body is cached) against the time it
    saves on a 100 Mbit LAN, here and on a Pi."""
    for route in (ALL_IMAGES, VIEW_ALL):
        body = Client(base).ask("GET", route).body
        start = time.process_time()
        for _ in range(5):
            packed = gzip.compress(body, 1, mtime=0)
        cpu_ms = (time.process_time() - start) / 5 * 1000
        plain_ms, packed_ms = (len(b) / LAN_BYTES_PER_S * 1000 for b in (body, packed))
        print(
            f"gzip {route}: {len(body) / 1e6:.2f} MB -> {len(packed) / 1e6:.2f} MB, {cpu_ms:.0f} ms CPU here"
            f" (~{cpu_ms * PI_SLOWER:.0f} ms on a Pi); on 100 Mbit {plain_ms:.0f} ms -> {packed_ms:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--albums", type=int, default=100)
    parser.add_argument("--per-album", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40, help="requests per client per row")
    parser.add_argument("--ingest", type=int, default=64, help="12 MP JPEGs ingested during the churn rows")
    args = parser.parse_args()
    spare = (args.clients + 1) * args.requests * 2 + 100

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)  # paths as short as the (2.7 MB at 100,000); the data dir is never indexed
        data_dir = root / "data"
        spare_paths = seed(data_dir, root, args.images, args.albums, args.per_album, spare)
        make_photos(root / "new", args.ingest)
        with running_server(data_dir, "--library-root", str(root), "--no-watch") as (base, server):
            writes = Writes(data_dir, spare_paths, args.albums)
            # Without ETags (an older version) there are no 304s, and a write straight to the database (all
            # albums) would not be seen: those rows are left out.
            versioned = Client(base).ask("GET", VIEW_ALL).getheader("ETag") is not None
            print(f"{args.images} images, {args.albums} albums of {args.per_album} photos; server pid {server.pid}")
            print(f"{'route':<30}{'cache':<7}{'p50 ms':>9}{'p99 ms':>9}{'n':>6}{'fresh':>7}{'body kB':>9}")
            print("-- one client")
            for route in (ALL_IMAGES, VIEW_ALL, OBJECTS):
                row(route, "miss", hammer(base, route, 1, args.requests, writes.before))
                if route == VIEW_ALL and versioned:
                    row(route + ", all albums", "miss", hammer(base, route, 1, args.requests, writes.every_album))
                row(route, "hit", hammer(base, route, 1, args.requests))
                if versioned:
                    row(route, "304", hammer(base, route, 1, args.requests, conditional=True))
            print(f"-- {args.clients} clients")
            for route in (ALL_IMAGES, VIEW_ALL, OBJECTS):
                row(route, "miss", hammer(base, route, args.clients, args.requests, writes.before))
                if route == VIEW_ALL and versioned:
                    every = hammer(base, route, args.clients, args.requests, writes.every_album)
                    row(route + ", all albums", "miss", every)
                row(route, "hit", hammer(base, route, args.clients, args.requests))
            listings_rss = peak_rss_mib(server.pid)
            print(f"-- {args.clients} clients during an ingest")
            for route, result in churn(base, root / "new", args.clients).items():
                row(route, "churn", result)
            print(f"server peak RSS: {listings_rss:.0f} MiB after the rows above, {peak_rss_mib(server.pid):.0f} MiB")
            gzip_cost(base)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
