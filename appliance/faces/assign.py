"""A new face's person, from its nearest stored faces: searched before the write transaction, checked inside.

The search (the slow part: a product over every stored face) runs first; inside the transaction only the
faces stored since then are compared, so two workers meeting a new person at once still agree on one person.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..infer.faces import Face
from . import graph
from .store import FaceVectors

# A poor face (see quality.py) joins a person only on a clearly closer match than a good one needs.
ATTACH_MARGIN = 0.1
COUNT_CHANGES = "UPDATE counters SET value = value + ? WHERE name = 'faces_changed'"


@dataclass
class Inheritance:
    """What a face of an image analysed again takes over from the face it replaces."""

    person: int | None
    locked: bool
    excluded: list[int]


@dataclass
class Search:
    """The neighbours of each face to store, found before the transaction, and what was stored by then."""

    neighbours: list[list[tuple[int, float]]]
    sequence: int


class Assigner:
    def __init__(self, store: FaceVectors, threshold: float):
        self.store = store
        self.threshold = threshold

    def search(self, vectors: np.ndarray) -> Search:
        sequence = self.store.sequence
        return Search([self.store.nearest(v, graph.NEIGHBOURS) for v in vectors], sequence)

    def add(
        self,
        conn,
        image_id: int,
        faces: Sequence[Face],
        vectors: np.ndarray,
        good: Sequence[bool],
        search: Search,
        inherited: Sequence[Inheritance | None] = (),
    ) -> None:
        """Store the faces of one image, each with its person: the one inherited from the face it replaces (an
        image analysed again, with the user's placing and exclusions), else the one most of its similar
        neighbours belong to, else a new person."""
        inherited = list(inherited) or [None] * len(faces)
        taken = {heir.person for heir in inherited if heir and heir.person is not None}  # one face per person
        recent = self.store.added_since(search.sequence)
        for face, vector, is_good, found, heir in zip(faces, vectors, good, search.neighbours, inherited, strict=True):
            neighbours = self._with_recent(found, vector, recent)
            if heir is not None:
                person = heir.person
            else:
                person = self._vote(conn, image_id, neighbours, taken, is_good)
            if person is not None:
                taken.add(person)
            placed = int(bool(heir and heir.locked))
            face_id = conn.execute(
                "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints, cluster_id, quality, locked)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, face.score, *face.box, json.dumps(face.keypoints), person, int(is_good), placed),
            ).lastrowid
            if heir is not None:
                conn.executemany(
                    "INSERT INTO face_exclusions (face_id, person_id) VALUES (?, ?)",
                    [(face_id, excluded) for excluded in heir.excluded],
                )
            self.store.put(conn, face_id, vector)
            graph.link(conn, face_id, neighbours)
            recent.append(face_id)  # the next face of this photo sees this one too (and stays apart from it)
        conn.execute(COUNT_CHANGES, (len(faces),))

    def _with_recent(self, found, vector: np.ndarray, recent: list[int]) -> list[tuple[int, float]]:
        ids, vectors = self.store.vectors(recent)
        more = [(face_id, float(similarity)) for face_id, similarity in zip(ids, vectors @ vector, strict=True)]
        merged = {face_id: similarity for face_id, similarity in [*found, *more]}
        return sorted(merged.items(), key=lambda item: -item[1])[: graph.NEIGHBOURS]

    def _vote(self, conn, image_id: int, neighbours, taken: set[int], is_good: bool) -> int | None:
        bar = self.threshold if is_good else self.threshold + ATTACH_MARGIN
        similar = {face_id: similarity for face_id, similarity in neighbours if similarity >= bar}
        votes: Counter[int] = Counter()
        if similar:
            rows = conn.execute(
                "SELECT faces.id, faces.image_id, faces.cluster_id, faces.quality FROM faces"
                f" WHERE faces.id IN ({','.join('?' * len(similar))}) AND faces.cluster_id IS NOT NULL",
                list(similar),
            )
            for face_id, other_image, person, quality in rows:
                if other_image != image_id and person not in taken and quality != 0:
                    votes[person] += similar[face_id]
        if votes:
            return votes.most_common(1)[0][0]
        if not is_good:
            return None  # a poor face never seeds a person: it stays unassigned
        return conn.execute("INSERT INTO people DEFAULT VALUES").lastrowid

    def copy(self, conn, donor_id: int, image_id: int) -> None:
        """Give a byte-identical image the donor's faces: same boxes, vectors, people and neighbours."""
        donor_faces = conn.execute("SELECT * FROM faces WHERE image_id = ? ORDER BY id", (donor_id,)).fetchall()
        for face in donor_faces:
            face_id = conn.execute(
                "INSERT INTO faces (image_id, score, x1, y1, x2, y2, keypoints, cluster_id, quality)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, *(face[c] for c in ("score", "x1", "y1", "x2", "y2", "keypoints", "cluster_id", "quality"))),
            ).lastrowid
            ids, vectors = self.store.vectors([face["id"]])
            if ids:
                self.store.put(conn, face_id, vectors[0])
            conn.execute(
                "INSERT INTO face_neighbours (face_id, neighbour_id, similarity)"
                " SELECT ?, neighbour_id, similarity FROM face_neighbours WHERE face_id = ?",
                (face_id, face["id"]),
            )
            graph.link(conn, face_id, [(face["id"], 1.0)])
        conn.execute(COUNT_CHANGES, (len(donor_faces),))
