"""Face search at scale: 100,000 stored embeddings, clustered like real people.

    python bench/faces.py [--faces 100000] [--people 10000] [--requests 300]

Seeds a data dir with synthetic 128-d face embeddings: each person a random direction, each face that
direction plus noise (same-person cosine about 0.7, as MobileFaceNet gives on aligned faces; different
people about 0), people's photo counts skewed like a real library. Then prints:
- p50/p99 of GET /tag/related-images on a real server (one client, random photos);
- p50/p99 of assigning one new face (KNN query, vote, insert; rolled back each time);
- the time of a full re-clustering, and how well it recovers the true people.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import requests
from server import running_server

from appliance.datadir import DATABASE_FILE
from appliance.db import Database
from appliance.faces import PERSON_BUCKETS, FaceIndex
from appliance.infer.faces import Face

DIMENSIONS = 128
NOISE = 0.65  # |noise| relative to the unit person direction: same-person cosine ~ 1 / (1 + 0.65^2)


class Rollback(Exception):
    pass


def synthetic_faces(faces: int, people: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    weights = 1.0 / np.arange(1, people + 1) ** 0.8
    person = rng.choice(people, size=faces, p=weights / weights.sum())
    centres = rng.standard_normal((people, DIMENSIONS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((faces, DIMENSIONS)).astype(np.float32) * (NOISE / np.sqrt(DIMENSIONS))
    vectors = centres[person] + noise
    return person, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def seed(db: Database, index: FaceIndex, person: np.ndarray, vectors: np.ndarray) -> int:
    """One photo per face except that every third photo holds two people; returns the number of photos."""
    image_of = np.arange(len(person)) - np.arange(len(person)) // 3  # faces 3n+1, 3n+2 share a photo
    images = int(image_of.max()) + 1
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO images (id, path, status) VALUES (?, ?, 'done')",
            ((i + 1, f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg") for i in range(images)),
        )
        conn.executemany("INSERT INTO people (id) VALUES (?)", ((p + 1,) for p in range(int(person.max()) + 1)))
        conn.executemany(
            "INSERT INTO faces (id, image_id, score, x1, y1, x2, y2, keypoints, cluster_id)"
            " VALUES (?, ?, 0.9, 0, 0, 1, 1, '[]', ?)",
            ((i + 1, int(image_of[i]) + 1, int(person[i]) + 1) for i in range(len(person))),
        )
        conn.executemany(
            f"INSERT INTO {index.table} (rowid, bucket, embedding, cluster_id) VALUES (?, ?, ?, ?)",
            (
                (i + 1, (int(person[i]) + 1) % PERSON_BUCKETS, vectors[i], int(person[i]) + 1)
                for i in range(len(person))
            ),
        )
    return images


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):6.1f} ms   p99 {np.percentile(ms, 99):6.1f} ms   (n={len(ms)})"


def related_images_latency(data_dir: Path, images: int, requests_count: int, rng: np.random.Generator) -> str:
    with running_server(data_dir, "--library-root", "/photos", "--ingest-workers", "1") as (base, _):
        session = requests.Session()
        latencies, found = [], []
        for i in rng.integers(0, images, requests_count):
            path = f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg"
            start = time.perf_counter()
            response = session.get(base + "/tag/related-images", params={"path": path}, timeout=30)
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
            found.append(len(response.json()["related_images"]))
        return f"{percentiles(latencies)}, {np.mean(found):.0f} related images on average"


def assign_latency(db: Database, index: FaceIndex, vectors: np.ndarray, count: int, rng) -> str:
    latencies = []
    for i in rng.integers(0, len(vectors), count):
        vector = vectors[i] + rng.standard_normal(DIMENSIONS).astype(np.float32) * (NOISE / np.sqrt(DIMENSIONS))
        vector = (vector / np.linalg.norm(vector)).astype(np.float32)
        start = time.perf_counter()
        try:
            with db.write(durable=False) as conn:
                index.add(conn, 1, [Face(0.9, (0, 0, 1, 1), ())], vector[None])
                latencies.append(time.perf_counter() - start)
                raise Rollback
        except Rollback:
            pass
    return percentiles(latencies)


def recovery(db: Database, person: np.ndarray) -> str:
    clusters = [row[0] for row in db.read().execute("SELECT cluster_id FROM faces ORDER BY id")]
    majority = Counter()
    for cluster, truth in zip(clusters, person, strict=True):
        majority[(cluster, truth)] += 1
    best_of_cluster: dict[int, int] = {}
    for (cluster, _), n in majority.items():
        best_of_cluster[cluster] = max(best_of_cluster.get(cluster, 0), n)
    purity = sum(best_of_cluster.values()) / len(person)
    return f"{len(set(clusters))} clusters for {len(set(person.tolist()))} people, purity {purity:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db = Database(data_dir / DATABASE_FILE)
        index = FaceIndex(DIMENSIONS, threshold=0.5)
        index.create_table(db)
        person, vectors = synthetic_faces(args.faces, args.people, rng)
        started = time.perf_counter()
        images = seed(db, index, person, vectors)
        print(f"{args.faces} faces of {len(set(person.tolist()))} people in {images} photos")
        print(f"seeded in {time.perf_counter() - started:.1f}s")
        same = float(vectors[person == person[0]][:2].prod(axis=0).sum())
        print(f"example same-person cosine: {same:.2f}")
        print("related-images:", related_images_latency(data_dir, images, args.requests, rng))
        print("assign a face: ", assign_latency(db, index, vectors, args.requests, rng))
        with db.write() as conn:  # start the re-clustering from nothing known: every face its own person
            conn.execute("UPDATE faces SET cluster_id = id")
            conn.execute(f"DELETE FROM {index.table}")
            conn.executemany(
                f"INSERT INTO {index.table} (rowid, bucket, embedding, cluster_id) VALUES (?, ?, ?, ?)",
                ((i + 1, (i + 1) % PERSON_BUCKETS, vectors[i], i + 1) for i in range(len(person))),
            )
        started = time.perf_counter()
        people = index.recluster(db)
        print(f"full re-clustering: {time.perf_counter() - started:.1f}s, {people} people")
        print("recovered:", recovery(db, person))
        db.close()


if __name__ == "__main__":
    main()
