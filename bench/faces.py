"""People at scale: synthetic faces of known people, grouped, searched and matched; how well and how fast.

    python bench/faces.py [--faces 100000] [--people 10000] [--requests 300]

Seeds a data dir with synthetic 128-d face embeddings: each person a random direction (different people's
directions meet at cosines up to about 0.45, as real look-alikes do), each face that direction plus noise
(same-person cosine about 0.7, as MobileFaceNet gives on aligned faces); photo counts skewed like a real
library; every third photo holds two people. Then prints:
- the one-off kNN graph build (what a library stored before the graph was kept needs once);
- a full re-clustering from nothing known (every face unassigned): time, longest write transaction, peak RSS,
  and the clustering score against the generating people (pairwise precision and recall, people split,
  clusters that merge people);
- assigning one new face (search outside the transaction, vote inside; rolled back each time): p50/p99;
- on a real server: GET /tag/related-images p50/p99, and GET /tag/match (uncached) time; its peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import requests
from server import peak_rss_mib, running_server

from appliance.datadir import DATABASE_FILE
from appliance.db import Database
from appliance.faces import FaceIndex, graph
from appliance.infer.faces import Face

DIMENSIONS = 128
NOISE = 0.65  # |noise| relative to the unit person direction: same-person cosine ~ 1 / (1 + 0.65^2)


class Rollback(Exception):
    pass


def reset_peak_rss() -> None:
    """Linux: VmHWM starts again from the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def synthetic_faces(faces: int, people: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    weights = 1.0 / np.arange(1, people + 1) ** 0.8
    person = rng.choice(people, size=faces, p=weights / weights.sum())
    centres = rng.standard_normal((people, DIMENSIONS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.empty((faces, DIMENSIONS), np.float32)
    for start in range(0, faces, 100_000):  # in slices: the noise of a million faces at once is 1 GB of float64
        part = slice(start, start + 100_000)
        noise = rng.standard_normal((len(person[part]), DIMENSIONS)).astype(np.float32) * (NOISE / np.sqrt(DIMENSIONS))
        vectors[part] = centres[person[part]] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return person, vectors


def seed(db: Database, index: FaceIndex, vectors: np.ndarray) -> int:
    """One photo per face except that every third photo holds two people; every face unassigned. Returns the
    number of photos."""
    count = len(vectors)
    image_of = np.arange(count) - np.arange(count) // 3  # faces 3n+1, 3n+2 share a photo
    images = int(image_of.max()) + 1
    index.open(db)
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (id, path, status) VALUES (?, ?, 'done')",
            ((i + 1, f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg") for i in range(images)),
        )
        conn.executemany(
            "INSERT INTO faces (id, image_id, score, x1, y1, x2, y2, keypoints, quality)"
            " VALUES (?, ?, 0.9, 0, 0, 1, 1, '[]', 1)",
            ((i + 1, int(image_of[i]) + 1) for i in range(count)),
        )
        conn.executemany(
            f"INSERT INTO {index.table} (rowid, embedding) VALUES (?, ?)", ((i + 1, vectors[i]) for i in range(count))
        )
    index.store.load(db)
    return images


def build_graph(db: Database, vectors: np.ndarray, person: np.ndarray | None = None) -> None:
    """What FaceIndex.repair does for a library without a graph (face ids here are row + 1). With `person`,
    each person's faces are searched among that person's only: the same strong edges, without the weak ones
    between people, in a fraction of the time (n^2 products take about 70 minutes here at a million faces)."""
    if person is None:
        groups = [np.arange(len(vectors))]
    else:
        groups = np.split(np.argsort(person), np.cumsum(np.bincount(person))[:-1])
    edges = (
        (rows[found[:, 1].astype(np.int64)] + 1, rows[found[:, 2].astype(np.int64)] + 1, found[:, 0])
        for rows in groups
        for found in graph.blocked_knn(vectors[rows], graph.NEIGHBOURS)
    )
    batch: list[tuple[int, int, float]] = []
    for faces, neighbours, similarities in edges:
        batch.extend(zip(faces.tolist(), neighbours.tolist(), similarities.tolist(), strict=True))
        if len(batch) >= 100_000:
            insert_edges(db, batch)
    insert_edges(db, batch)


def insert_edges(db: Database, batch: list[tuple[int, int, float]]) -> None:
    with db.write(durable=False) as conn:
        conn.executemany("INSERT INTO face_neighbours (face_id, neighbour_id, similarity) VALUES (?, ?, ?)", batch)
    batch.clear()


def score(db: Database, truth: np.ndarray) -> str:
    """Pairwise precision and recall over same-cluster pairs, from the contingency table (no pairs listed)."""
    found = np.array(
        [
            row[0] if row[0] is not None else -(n + 1)
            for n, row in enumerate(db.read().execute("SELECT cluster_id FROM faces ORDER BY id"))
        ]
    )
    pairs = Counter(zip(found.tolist(), truth.tolist(), strict=True))

    def same(counts) -> int:
        return sum(n * (n - 1) // 2 for n in counts)

    both = same(pairs.values())
    precision = both / max(same(Counter(found.tolist()).values()), 1)
    recall = both / max(same(Counter(truth.tolist()).values()), 1)
    people_of_cluster = Counter(cluster for cluster, _ in pairs)
    clusters_of_person = Counter(person for _, person in pairs)
    split = sum(1 for n in clusters_of_person.values() if n > 1)
    merging = sum(1 for n in people_of_cluster.values() if n > 1)
    unassigned = int((found < 0).sum())
    return (
        f"pairwise precision {precision:.4f}, recall {recall:.4f}; {len(set(found.tolist()))} clusters for"
        f" {len(set(truth.tolist()))} people; {split} people split, {merging} clusters merging people,"
        f" {unassigned} faces unassigned"
    )


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p99 {np.percentile(ms, 99):7.1f} ms   (n={len(ms)})"


def assign_latency(db: Database, index: FaceIndex, vectors: np.ndarray, count: int, rng) -> str:
    latencies = []
    for i in rng.integers(0, len(vectors), count):
        vector = vectors[i] + rng.standard_normal(DIMENSIONS).astype(np.float32) * (NOISE / np.sqrt(DIMENSIONS))
        vector = (vector / np.linalg.norm(vector)).astype(np.float32)[None]
        start = time.perf_counter()
        search = index.search(vector)
        try:
            with db.write(durable=False) as conn:
                index.add(conn, 1, [Face(0.9, (0, 0, 1, 1), ())], vector, [True], search)
                latencies.append(time.perf_counter() - start)
                raise Rollback
        except Rollback:
            pass
    index.store.load(db)  # the rolled-back faces are still in memory: reload, as housekeeping would
    return percentiles(latencies)


def served(data_dir: Path, images: int, requests_count: int, rng) -> None:
    with running_server(data_dir, "--library-root", "/photos", "--ingest-workers", "1", "--no-watch") as (base, server):
        session = requests.Session()
        latencies = []
        for i in rng.integers(0, images, requests_count):
            start = time.perf_counter()
            response = session.get(
                base + "/tag/related-images", params={"path": f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg"}
            )
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
        print("related-images:   ", percentiles(latencies))
        start = time.perf_counter()
        pairs = session.get(base + "/tag/match", params={"limit": 1000}, timeout=600).json()["similar_pairs"]
        print(f"/tag/match:        {time.perf_counter() - start:.2f} s uncached ({len(pairs)} pairs)")
        print(f"server peak RSS:   {peak_rss_mib(server.pid):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--graph", choices=("exact", "per-person"), default="exact", help="how the one-off kNN graph is built"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db = Database(data_dir / DATABASE_FILE)
        index = FaceIndex(DIMENSIONS, threshold=0.5)
        person, vectors = synthetic_faces(args.faces, args.people, rng)
        images = seed(db, index, vectors)
        print(f"{args.faces} faces of {len(set(person.tolist()))} people in {images} photos")
        one_each = vectors[np.unique(person, return_index=True)[1][:2000]]  # a face of each of 2000 people
        cross = one_each @ one_each.T
        np.fill_diagonal(cross, -1)
        print(f"most alike different people (one face each, 2000 people): cosine {cross.max():.2f}")
        started = time.perf_counter()
        build_graph(db, vectors, person if args.graph == "per-person" else None)
        print(f"kNN graph build:   {time.perf_counter() - started:.1f} s (one-off, {args.graph})")
        del vectors
        reset_peak_rss()  # from here the peak is what the re-clustering holds (the vectors in memory too)
        started = time.perf_counter()
        outcome = index.recluster(db, everything=True)
        print(
            f"re-clustering:     {time.perf_counter() - started:.1f} s from nothing known, longest write"
            f" {outcome.longest_write_ms:.0f} ms, {outcome.people} people"
        )
        print("clustering score: ", score(db, person))
        overall = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"re-clustering RSS: {peak_rss_mib(os.getpid()):.0f} MiB at peak, the vectors in memory included"
            f" (the bench's own peak, seeding included: {overall:.0f} MiB)"
        )
        vectors = index.store.snapshot()[1]
        print("assign a face:    ", assign_latency(db, index, vectors, args.requests, rng))
        db.close()
        served(data_dir, images, args.requests, rng)


if __name__ == "__main__":
    main()
