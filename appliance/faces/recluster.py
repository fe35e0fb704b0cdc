"""Re-clustering, incremental: only the people that new, removed or corrected faces touch are grouped again.

The grouping is computed from a read snapshot without any lock; the result is written in small transactions
(a few hundred faces each, milliseconds), each checking that its faces were not changed meanwhile (a new
assignment, a user's correction): those are left for the next run. Memory is the region's vectors and its
kNN edges, never an n x n matrix.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..db import Database
from . import graph
from .assign import ATTACH_MARGIN
from .cluster import Faces, group_faces, stable_ids
from .store import FaceVectors

log = logging.getLogger(__name__)

WRITE_CHUNK = 500


@dataclass
class Outcome:
    faces: int  # faces grouped again
    moved: int  # faces whose person changed
    people: int  # people among the faces grouped
    longest_write_ms: float


def dirty_region(db: Database, threshold: float) -> tuple[list[int], int, list[int]]:
    """(face ids to group again, the newest face id seen, the touched-people rows seen): the faces of every
    person that has a face added since the last run, lost one, or was corrected, and of the people those new
    faces resemble; plus the new faces themselves."""
    conn = db.read()
    (last,) = conn.execute("SELECT value FROM counters WHERE name = 'clustered_up_to'").fetchone()
    (newest,) = conn.execute("SELECT coalesce(max(id), 0) FROM faces").fetchone()
    touched = [row[0] for row in conn.execute("SELECT person_id FROM people_touched")]
    new_faces = [row[0] for row in conn.execute("SELECT id FROM faces WHERE id > ?", (last,))]
    people = set(touched)
    for start in range(0, len(new_faces), 500):
        part = new_faces[start : start + 500]
        marks = ",".join("?" * len(part))
        people.update(
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT cluster_id FROM faces WHERE id IN ({marks}) AND cluster_id IS NOT NULL"
                " UNION SELECT DISTINCT f.cluster_id FROM face_neighbours n JOIN faces f ON f.id = n.neighbour_id"
                f" WHERE n.face_id IN ({marks}) AND n.similarity >= ? AND f.cluster_id IS NOT NULL",
                [*part, *part, threshold],
            )
        )
    region = set(new_faces)
    people_list = sorted(people)
    for start in range(0, len(people_list), 500):
        part = people_list[start : start + 500]
        region.update(
            row[0]
            for row in conn.execute(f"SELECT id FROM faces WHERE cluster_id IN ({','.join('?' * len(part))})", part)
        )
    return sorted(region), newest, touched


def load_faces(db: Database, store: FaceVectors, face_ids: list[int] | None) -> tuple[np.ndarray, Faces, list]:
    """The faces (all, or the given ones) that have a vector, as arrays for the grouping, and their persons now
    (None: nobody). Read as arrays a slice at a time: a million faces as tuples and dicts took a gigabyte."""
    cursor = db.read().cursor()
    cursor.row_factory = None
    query = "SELECT id, image_id, coalesce(cluster_id, 0), coalesce(quality, 1), locked FROM faces"
    if face_ids is None:
        table = graph.rows_as_array(cursor.execute(f"{query} ORDER BY id"), np.int64, 5)
    else:
        parts = [np.zeros((0, 5), np.int64)]
        for start in range(0, len(face_ids), 500):
            part = face_ids[start : start + 500]
            marks = ",".join("?" * len(part))
            parts.append(graph.rows_as_array(cursor.execute(f"{query} WHERE id IN ({marks})", part), np.int64, 5))
        table = np.concatenate(parts)
        table = table[np.argsort(table[:, 0])]
    found, vectors = store.vectors(table[:, 0].tolist())
    ids = np.array(found, np.int64)
    table = table[np.isin(table[:, 0], ids)]  # both in id order
    excluded: dict[int, set[int]] = {}
    for face_id, person in cursor.execute("SELECT face_id, person_id FROM face_exclusions"):
        position = int(np.searchsorted(ids, face_id))
        if position < len(ids) and ids[position] == face_id:
            excluded.setdefault(position, set()).add(person)
    person = table[:, 2]
    faces = Faces(
        image=table[:, 1].copy(),
        vectors=vectors,
        good=table[:, 3] != 0,
        anchor=np.where(table[:, 4] != 0, person, 0),
        excluded=excluded,
    )
    return ids, faces, [p or None for p in person.tolist()]


def recluster(
    db: Database,
    store: FaceVectors,
    threshold: float,
    everything: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> Outcome | None:
    """Group again the dirty region (or every face); None when stopped. What changes meanwhile stays dirty."""
    (changed,) = db.read().execute("SELECT value FROM counters WHERE name = 'faces_changed'").fetchone()
    region, newest, touched = dirty_region(db, threshold)
    if everything:
        region = None
    ids, faces, old = load_faces(db, store, region)
    edges = as_indices(graph.edges(db, threshold, None if everything else ids.tolist()), ids)
    grouped = group_faces(faces, edges, threshold, threshold + ATTACH_MARGIN, should_stop)
    if grouped is None or should_stop():  # stopping: what is due stays due
        return None
    labels, anchored = grouped
    del faces, edges, grouped  # the vectors and edges are not needed to write: give their memory back first
    moved, people, longest = write_people(db, ids, labels, old, anchored)
    with db.write() as conn:
        conn.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'clustered_up_to'", (newest,))
        conn.executemany("DELETE FROM people_touched WHERE person_id = ?", [(p,) for p in touched])
        conn.execute("UPDATE counters SET value = max(value - ?, 0) WHERE name = 'faces_changed'", (changed,))
    return Outcome(len(ids), moved, people, longest)


def as_indices(edges: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Edges between face ids -> edges between positions in `ids` (sorted), in place; edges leaving `ids` are
    dropped. Column by column: a million faces have ten million edges, 240 MB as an array."""
    if not len(edges) or not len(ids):
        return np.zeros((0, 3))
    inside = np.ones(len(edges), bool)
    for column in (1, 2):
        face = edges[:, column].astype(np.int64)
        position = np.searchsorted(ids, face)
        np.clip(position, 0, len(ids) - 1, out=position)
        inside &= ids[position] == face
        edges[:, column] = position
    return edges if inside.all() else edges[inside]


def write_people(
    db: Database, ids: np.ndarray, labels: np.ndarray, old: list, anchored: dict
) -> tuple[int, int, float]:
    """Write the new person of each face that changed, a chunk per short transaction; a face changed by someone
    else since it was read is left as it is. Returns (faces moved, people, longest transaction in ms)."""
    placeholders = itertools.count(-1, -1)  # new people get negative stand-ins, made real in their chunk
    new = stable_ids(labels.tolist(), old, anchored, lambda: next(placeholders))
    fresh: dict[int, int] = {}
    changes = [(int(face_id), person, before) for face_id, person, before in zip(ids, new, old, strict=True)]
    changes = [change for change in changes if change[1] != change[2]]
    longest, moved = 0.0, 0
    for start in range(0, len(changes), WRITE_CHUNK):
        started = time.perf_counter()
        with db.write(durable=False) as conn:
            rows = []
            for face_id, person, before in changes[start : start + WRITE_CHUNK]:
                if person is not None and person < 0:
                    if person not in fresh:
                        fresh[person] = conn.execute("INSERT INTO people DEFAULT VALUES").lastrowid
                    person = fresh[person]
                rows.append((person, face_id, before))
            moved += conn.executemany(
                "UPDATE faces SET cluster_id = ? WHERE id = ? AND cluster_id IS ? AND locked = 0", rows
            ).rowcount
        longest = max(longest, (time.perf_counter() - started) * 1000)
    return moved, len({person for person in new if person is not None}), longest
