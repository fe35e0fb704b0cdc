"""People: face rows, their embeddings in a sqlite-vec table, clusters (one per person) and the /tag answers.

Similarity is the cosine similarity of L2-normalised embeddings; sqlite-vec returns cosine distance, 1 - it.
Two faces in one photo are never the same person: assignment and re-clustering both respect that.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .catalog import ANALYSED
from .db import Database
from .infer.detector import intersection_over_union
from .infer.faces import Face

# Vectors are partitioned by person (cluster id modulo this): a search within one person reads only its
# partition (0.4 ms at 100,000 faces instead of 10-20 ms), and a search over everyone reads them all.
PERSON_BUCKETS = 64

# Faces added or removed since the last re-clustering, kept in the database so a restart keeps what is due.
COUNT_CHANGES = "UPDATE counters SET value = value + ? WHERE name = 'faces_changed'"


def faces_changed(db: Database) -> int:
    return db.read().execute("SELECT value FROM counters WHERE name = 'faces_changed'").fetchone()[0]


class FaceIndex:
    def __init__(self, dimensions: int, threshold: float, neighbours: int = 10):
        self.dimensions = dimensions
        self.threshold = threshold  # lowest similarity taken as the same person
        self.neighbours = neighbours
        self.table = f"face_vectors_{dimensions}"

    def create_table(self, db: Database) -> None:
        # One table per embedding size: vectors of two embedders are not comparable. cluster_id mirrors
        # faces.cluster_id so a KNN query can stay within one person.
        with db.write() as conn:
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table} USING vec0(bucket integer partition key,"
                f" embedding float[{self.dimensions}] distance_metric=cosine, cluster_id integer)"
            )

    # -- writes, inside the caller's transaction -------------------------------------------------------

    def nearest(self, conn, vector: np.ndarray, k: int, cluster: int | None = None) -> list[tuple[int, float]]:
        """(face id, similarity) of the k stored faces nearest to `vector` (of one person when `cluster` is
        given), most similar first."""
        within = "" if cluster is None else " AND bucket = ? AND cluster_id = ?"
        rows = conn.execute(
            f"SELECT rowid, distance FROM {self.table} WHERE embedding MATCH ? AND k = ?{within} ORDER BY distance",
            (vector.astype(np.float32).tobytes(), k, *(() if cluster is None else (cluster % PERSON_BUCKETS, cluster))),
        ).fetchall()
        return [(row[0], 1.0 - row[1]) for row in rows]

    def add(
        self, conn, image_id: int, faces: Sequence[Face], vectors: np.ndarray, inherited: Sequence[int | None] = ()
    ) -> None:
        """Store the faces of one image and give each a person: the one it inherits from the face it replaces
        (`inherited`, per face, when the image is analysed again), else from its nearest stored neighbours."""
        inherited = list(inherited) or [None] * len(faces)
        taken: set[int] = {person for person in inherited if person is not None}  # one face per person here
        for face, vector, heir in zip(faces, vectors, inherited, strict=True):
            person = heir if heir is not None else self._assign(conn, image_id, vector, taken)
            taken.add(person)
            face_id = conn.execute(
                "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints, cluster_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, face.score, *face.box, json.dumps(face.keypoints), person),
            ).lastrowid
            conn.execute(
                f"INSERT INTO {self.table} (rowid, bucket, embedding, cluster_id) VALUES (?, ?, ?, ?)",
                (face_id, person % PERSON_BUCKETS, vector.astype(np.float32), person),
            )
        conn.execute(COUNT_CHANGES, (len(faces),))

    def _assign(self, conn, image_id: int, vector: np.ndarray, taken: set[int]) -> int:
        votes: Counter[int] = Counter()
        neighbours = self.nearest(conn, vector, self.neighbours)
        if neighbours:
            ids = [face_id for face_id, similarity in neighbours if similarity >= self.threshold]
            rows = conn.execute(
                f"SELECT id, image_id, cluster_id FROM faces WHERE id IN ({','.join('?' * len(ids))})", ids
            ).fetchall()
            similarity = dict(neighbours)
            for row in rows:
                if row["image_id"] != image_id and row["cluster_id"] not in taken:
                    votes[row["cluster_id"]] += similarity[row["id"]]
        if votes:
            return votes.most_common(1)[0][0]
        return conn.execute("INSERT INTO people DEFAULT VALUES").lastrowid

    def copy(self, conn, donor_id: int, image_id: int) -> None:
        """Give a byte-identical image the donor's faces: same boxes, same vectors, same people."""
        donor_faces = conn.execute("SELECT * FROM faces WHERE image_id = ? ORDER BY id", (donor_id,)).fetchall()
        conn.execute(COUNT_CHANGES, (len(donor_faces),))
        for face in donor_faces:
            face_id = conn.execute(
                "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints, cluster_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, *(face[c] for c in ("score", "x1", "y1", "x2", "y2", "keypoints", "cluster_id"))),
            ).lastrowid
            conn.execute(
                f"INSERT INTO {self.table} (rowid, bucket, embedding, cluster_id)"
                f" SELECT ?, bucket, embedding, cluster_id FROM {self.table} WHERE rowid = ?",
                (face_id, face["id"]),
            )

    def people_by_box(self, conn, image_id: int, faces: Sequence[Face], min_overlap: float = 0.5) -> list[int | None]:
        """For each new face of an image analysed again, the person of the stored face it replaces (the same
        place, IoU at least `min_overlap`), so names and corrections survive a re-analysis."""
        old = conn.execute("SELECT x1, y1, x2, y2, cluster_id FROM faces WHERE image_id = ?", (image_id,)).fetchall()
        pairs = []
        for n, face in enumerate(faces):
            boxes = np.array([face.box, *(row[:4] for row in old)], dtype=np.float64)
            overlaps = intersection_over_union(boxes, 0, np.arange(1, len(boxes)))
            pairs += [(float(overlap), n, row[4]) for overlap, row in zip(overlaps, old, strict=True)]
        pairs.sort(reverse=True)
        people: list[int | None] = [None] * len(faces)
        used: set[int] = set()
        for overlap, n, person in pairs:
            if overlap >= min_overlap and people[n] is None and person not in used:
                people[n] = person
                used.add(person)
        return people

    def remove_image(self, conn, image_id: int) -> None:
        """Drop an image's vectors; its face rows go with the image (ON DELETE CASCADE)."""
        (count,) = conn.execute("SELECT count(*) FROM faces WHERE image_id = ?", (image_id,)).fetchone()
        conn.execute(COUNT_CHANGES, (count,))
        conn.execute(f"DELETE FROM {self.table} WHERE rowid IN (SELECT id FROM faces WHERE image_id = ?)", (image_id,))

    # -- reads -------------------------------------------------------------------------------------------

    def related_images(self, db: Database, image_id: int, limit: int = 100) -> list[str]:
        """Other images showing a person of this one, most similar first: per face, one KNN query within
        that face's person."""
        conn = db.read()
        best: dict[str, float] = {}
        faces = conn.execute(
            # CROSS JOIN keeps faces the outer loop: a point lookup in the vector table, not a scan of it.
            f"SELECT v.rowid, v.embedding, v.cluster_id FROM faces CROSS JOIN {self.table} v ON v.rowid = faces.id"
            " WHERE faces.image_id = ?",
            (image_id,),
        ).fetchall()
        for face_id, vector, cluster in faces:
            similarity = dict(self.nearest(conn, np.frombuffer(vector, np.float32), limit, cluster))
            similarity.pop(face_id, None)
            if not similarity:
                continue
            rows = conn.execute(
                "SELECT faces.id, images.path FROM faces JOIN images ON images.id = faces.image_id"
                f" WHERE faces.id IN ({','.join('?' * len(similarity))}) AND faces.image_id != ?"
                f" AND {ANALYSED}",
                [*similarity, image_id],
            ).fetchall()
            for row in rows:
                best[row["path"]] = max(best.get(row["path"], -1.0), similarity[row["id"]])
        return sorted(best, key=lambda path: (-best[path], path))

    def matches(self, db: Database, threshold: float, limit: int) -> list[dict]:
        """Pairs of different images that share a person, each once, most similar first."""
        conn = db.read()
        rows = conn.execute(
            f"SELECT faces.id, faces.image_id, images.path, v.embedding FROM faces"
            f" JOIN images ON images.id = faces.image_id JOIN {self.table} v ON v.rowid = faces.id"
            f" WHERE {ANALYSED}"
        ).fetchall()
        where = {row[0]: (row[1], row[2]) for row in rows}
        pairs: dict[tuple[str, str], float] = {}
        for _, image_id, path, vector in rows:
            for other, similarity in self.nearest(conn, np.frombuffer(vector, np.float32), self.neighbours):
                if similarity < threshold or other not in where or where[other][0] == image_id:
                    continue
                key = tuple(sorted((path, where[other][1])))
                pairs[key] = max(pairs.get(key, -1.0), similarity)
        ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [{"image1": a, "image2": b, "similarity": round(s, 4)} for (a, b), s in ranked]

    def clusters(self, db: Database, min_size: int = 1) -> dict[str, list[str]]:
        """Each person's images (paths, sorted), largest cluster first."""
        people: dict[int, list[str]] = defaultdict(list)
        for cluster_id, path in db.read().execute(
            "SELECT DISTINCT faces.cluster_id, images.path FROM faces JOIN images ON images.id = faces.image_id"
            f" WHERE {ANALYSED} ORDER BY images.path"
        ):
            people[cluster_id].append(path)
        ranked = sorted(people.items(), key=lambda item: (-len(item[1]), item[0]))
        return {str(cluster_id): paths for cluster_id, paths in ranked if len(paths) >= min_size}

    # -- full re-clustering ------------------------------------------------------------------------------

    def recluster(self, db: Database, should_stop: Callable[[], bool] = lambda: False, block: int = 1024) -> int | None:
        """Rebuild every cluster from the kNN graph, keeping ids stable. Returns the number of people, or
        None when faces came or went meanwhile (the next run will see them) or `should_stop` said so."""
        changes_seen = faces_changed(db)
        # Faces with a vector of the current embedder (during a re-analysis after a change, not all have one).
        rows = (
            db.read()
            .execute(
                f"SELECT faces.id, faces.image_id, faces.cluster_id, v.embedding FROM faces"
                f" JOIN {self.table} v ON v.rowid = faces.id ORDER BY faces.id"
            )
            .fetchall()
        )
        members_sql = f"SELECT faces.id, faces.image_id FROM faces JOIN {self.table} v ON v.rowid = faces.id ORDER BY 1"
        if not rows:
            return 0
        members = [(row[0], row[1]) for row in rows]
        vectors = np.frombuffer(b"".join(row[3] for row in rows), np.float32).reshape(len(rows), -1)
        edges = []
        for found in knn_edges(vectors, self.neighbours, self.threshold, block):
            if should_stop():  # a stop must not wait for a whole re-clustering; it stays due
                return None
            edges.append(found)
        edges = np.concatenate(edges) if edges else np.zeros((0, 3))
        labels = cluster_with_cannot_links(edges, [image for _, image in members])
        with db.write() as conn:
            if [tuple(row) for row in conn.execute(members_sql)] != members:
                return None
            new_ids = stable_ids(
                labels,
                [row[2] for row in rows],
                lambda: conn.execute("INSERT INTO people DEFAULT VALUES").lastrowid,
            )
            moved = [position for position, row in enumerate(rows) if new_ids[position] != row[2]]
            conn.executemany(
                "UPDATE faces SET cluster_id = ? WHERE id = ?", [(new_ids[p], members[p][0]) for p in moved]
            )
            # A partition key cannot be updated: a vector moves to its new person's partition.
            conn.executemany(f"DELETE FROM {self.table} WHERE rowid = ?", [(members[p][0],) for p in moved])
            conn.executemany(
                f"INSERT INTO {self.table} (rowid, bucket, embedding, cluster_id) VALUES (?, ?, ?, ?)",
                [(members[p][0], new_ids[p] % PERSON_BUCKETS, vectors[p], new_ids[p]) for p in moved],
            )
            conn.execute(COUNT_CHANGES, (-changes_seen,))
        return len(set(new_ids))


def knn_edges(vectors: np.ndarray, k: int, threshold: float, block: int) -> Iterator[np.ndarray]:
    """Rows of (similarity, i, j), one array per block of faces: each face's k most similar others at or
    above the threshold.

    Blocked matrix products with reused buffers (fresh 400 MB arrays per block cost more in page faults
    than the products themselves); only the pairs above the threshold are ever sorted.
    """
    count = len(vectors)
    block = min(block, count)
    similarity = np.empty((block, count), np.float32)
    above = np.empty((block, count), bool)
    for start in range(0, count, block):
        rows = vectors[start : start + block]
        sims, mask = similarity[: len(rows)], above[: len(rows)]
        np.matmul(rows, vectors.T, out=sims)
        sims[np.arange(len(rows)), start + np.arange(len(rows))] = -2.0  # not its own neighbour
        np.greater_equal(sims, threshold, out=mask)
        row, col = np.divmod(np.flatnonzero(mask), count)  # 1-D scan: ten times np.nonzero's speed
        values = sims[row, col]
        order = np.lexsort((-values, row))  # by row, most similar first
        row, col, values = row[order], col[order], values[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        keep = rank < k
        yield np.stack([values[keep], start + row[keep], col[keep]], axis=1)


def cluster_with_cannot_links(edges: np.ndarray, image_ids: Sequence[int]) -> list[int]:
    """Join faces along the strongest edges first (single linkage on the kNN graph), never letting two
    faces of one image into the same cluster. Returns a cluster label per face."""
    parent = list(range(len(image_ids)))
    images = [{int(image)} for image in image_ids]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    strongest_first = edges[np.argsort(-edges[:, 0], kind="stable")] if len(edges) else edges
    for i, j in strongest_first[:, 1:].astype(np.int64).tolist():
        a, b = root(i), root(j)
        if a == b or not images[a].isdisjoint(images[b]):
            continue
        if len(images[a]) < len(images[b]):
            a, b = b, a
        parent[b] = a
        images[a] |= images[b]
        images[b] = set()
    return [root(i) for i in range(len(image_ids))]


def stable_ids(labels: list[int], old: list[int | None], allocate: Callable[[], int]) -> list[int]:
    """Name each new cluster after the old cluster it overlaps most (each old id used once); the others
    get fresh ids from `allocate`."""
    overlap: Counter[tuple[int, int]] = Counter(
        (label, previous) for label, previous in zip(labels, old, strict=True) if previous is not None
    )
    chosen: dict[int, int] = {}
    used: set[int] = set()
    for (label, previous), _ in sorted(overlap.items(), key=lambda item: -item[1]):
        if label not in chosen and previous not in used:
            chosen[label] = previous
            used.add(previous)
    result = []
    for label in labels:
        if label not in chosen:
            chosen[label] = allocate()
        result.append(chosen[label])
    return result
