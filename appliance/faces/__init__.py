"""People: faces, their embeddings, the kNN graph between them, and who is who.

One small module per job, sharing the kNN graph: `store` (vectors: sqlite-vec on disk, a matrix in memory),
`graph` (each face's nearest faces, in the database), `assign` (a new face's person), `cluster` (grouping,
a pure function), `recluster` (incremental, in short transactions), `corrections` (what users say),
`answers` (/tag). `FaceIndex` is the one object the rest of the appliance holds.

Similarity is the cosine similarity of L2-normalised embeddings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from ..db import Database
from ..infer.detector import intersection_over_union
from ..infer.faces import Face
from . import answers, corrections, graph
from .assign import COUNT_CHANGES, Assigner, Inheritance, Search
from .recluster import Outcome, recluster
from .store import FaceVectors

__all__ = ["FaceIndex", "Search", "faces_changed", "answers", "corrections"]

log = logging.getLogger(__name__)


def faces_changed(db: Database) -> int:
    """Faces added or removed since the last re-clustering (kept in the database: a restart keeps it due)."""
    return db.read().execute("SELECT value FROM counters WHERE name = 'faces_changed'").fetchone()[0]


class FaceIndex:
    def __init__(self, dimensions: int, threshold: float):
        self.dimensions = dimensions
        self.threshold = threshold  # lowest similarity taken as the same person
        self.store = FaceVectors(dimensions)
        self.assigner = Assigner(self.store, threshold)
        self._orphans: set[int] = set()  # faces whose neighbour went: searched again by housekeeping

    @property
    def table(self) -> str:
        return self.store.table

    def open(self, db: Database) -> None:
        """At start: the vector table (created, or migrated from the older layout) and the matrix from it."""
        self.store.create_table(db)
        self.store.load(db)

    # -- inside the caller's write transaction ----------------------------------------------------------

    def search(self, vectors: np.ndarray) -> Search:
        """Before the transaction: the neighbours of faces about to be stored."""
        return self.assigner.search(vectors)

    def add(self, conn, image_id: int, faces: Sequence[Face], vectors: np.ndarray, *details) -> None:
        """Store an image's faces: `details` are assign.Assigner.add's (good, search, inherited)."""
        self.assigner.add(conn, image_id, faces, vectors, *details)

    def copy(self, conn, donor_id: int, image_id: int) -> None:
        self.assigner.copy(conn, donor_id, image_id)

    def remove_image(self, conn, image_id: int) -> None:
        """Drop an image's vectors and graph edges; its face rows go with the image (ON DELETE CASCADE). Its
        people are looked at again by the next re-clustering."""
        rows = conn.execute("SELECT id, cluster_id FROM faces WHERE image_id = ?", (image_id,)).fetchall()
        if not rows:
            return
        face_ids = [row[0] for row in rows]
        self._orphans.update(graph.orphaned_by(conn, face_ids))
        self._orphans.difference_update(face_ids)
        conn.execute(COUNT_CHANGES, (len(rows),))
        corrections.touch(conn, [row[1] for row in rows])
        self.store.drop(conn, face_ids)

    def people_by_box(self, conn, image_id: int, faces: Sequence[Face], min_overlap: float = 0.5) -> list:
        """For each new face of an image analysed again, what the stored face it replaces (the same place, IoU
        at least `min_overlap`) had: its person, whether a user placed it, the people it must not join. Names
        and corrections survive a re-analysis."""
        old = conn.execute(
            "SELECT x1, y1, x2, y2, id, cluster_id, locked FROM faces WHERE image_id = ?", (image_id,)
        ).fetchall()
        pairs = []
        for n, face in enumerate(faces):
            boxes = np.array([face.box, *(row[:4] for row in old)], dtype=np.float64)
            overlaps = intersection_over_union(boxes, 0, np.arange(1, len(boxes)))
            pairs += [(float(overlap), n, row) for overlap, row in zip(overlaps, old, strict=True)]
        pairs.sort(key=lambda pair: pair[0], reverse=True)
        heirs: list[Inheritance | None] = [None] * len(faces)
        used: set[int] = set()
        for overlap, n, row in pairs:
            if overlap >= min_overlap and heirs[n] is None and row["id"] not in used:
                excluded = [
                    r[0] for r in conn.execute("SELECT person_id FROM face_exclusions WHERE face_id = ?", (row["id"],))
                ]
                heirs[n] = Inheritance(row["cluster_id"], bool(row["locked"]), excluded)
                used.add(row["id"])
        return heirs

    # -- housekeeping ------------------------------------------------------------------------------------

    def recluster(
        self, db: Database, everything: bool = False, should_stop: Callable[[], bool] = lambda: False
    ) -> Outcome | None:
        return recluster(db, self.store, self.threshold, everything, should_stop)

    def repair(self, db: Database, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Keep the kNN graph whole: build it for a library stored before it was kept, search again the faces
        that lost a neighbour, and reload the matrix if memory and table disagree (a rolled-back write).
        Returns how many faces were searched."""
        if not self.store.matches_database(db):
            self.store.load(db)
        (linked,) = db.read().execute("SELECT count(*) FROM (SELECT 1 FROM face_neighbours LIMIT 1)").fetchone()
        if not linked and len(self.store) > 1:
            return self._build_graph(db, should_stop)
        orphans, self._orphans = sorted(self._orphans), set()
        for start in range(0, len(orphans), 200):
            with db.write(durable=False) as conn:
                for face_id in orphans[start : start + 200]:
                    ids, vectors = self.store.vectors([face_id])
                    if ids:
                        conn.execute("DELETE FROM face_neighbours WHERE face_id = ?", (face_id,))
                        graph.link(conn, face_id, self.store.nearest(vectors[0], graph.NEIGHBOURS, exclude=face_id))
        return len(orphans)

    def _build_graph(self, db: Database, should_stop: Callable[[], bool]) -> int:
        ids, vectors = self.store.snapshot()
        log.info("building the kNN graph of %d faces (once, for faces stored before it was kept)", len(ids))
        for found in graph.blocked_knn(vectors, graph.NEIGHBOURS, should_stop=should_stop):
            with db.write(durable=False) as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO face_neighbours (face_id, neighbour_id, similarity) VALUES (?, ?, ?)",
                    ((int(ids[int(i)]), int(ids[int(j)]), float(s)) for s, i, j in found.tolist()),
                )
        return len(ids)

    # -- answers -----------------------------------------------------------------------------------------

    def related_images(self, db: Database, image_id: int, limit: int = 100) -> list[str]:
        return answers.related_images(db, self.store, image_id, limit)

    def matches(self, db: Database, threshold: float, limit: int) -> list[dict]:
        return answers.matches(db, threshold, limit)

    def clusters(self, db: Database, min_size: int = 1) -> dict[str, list[str]]:
        return answers.clusters(db, min_size)
