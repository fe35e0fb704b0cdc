"""The kNN graph of faces, kept in the database: each face's most similar faces when it was stored.

It is what the people answers are made of: /tag/match reads its edges in one query, and re-clustering walks
them instead of comparing every face with every other (n x n). Each face's list is written once, with the
search its assignment does anyway; a face whose neighbour goes is searched again by housekeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..db import Database

NEIGHBOURS = 10


def link(conn, face_id: int, neighbours: Sequence[tuple[int, float]]) -> None:
    """Record a face's neighbours (face id, similarity); only those still stored (committed or ours) count."""
    conn.executemany(
        "INSERT OR REPLACE INTO face_neighbours (face_id, neighbour_id, similarity)"
        " SELECT ?, id, ? FROM faces WHERE id = ?",
        [(face_id, similarity, other) for other, similarity in neighbours if other != face_id],
    )


def orphaned_by(conn, face_ids: Sequence[int]) -> list[int]:
    """Faces that list one of these (about to go) among their neighbours: their lists need a new search."""
    found: set[int] = set()
    for start in range(0, len(face_ids), 500):
        part = face_ids[start : start + 500]
        found.update(
            row[0]
            for row in conn.execute(
                f"SELECT face_id FROM face_neighbours WHERE neighbour_id IN ({','.join('?' * len(part))})", part
            )
        )
    return sorted(found - set(face_ids))


def edges(db: Database, threshold: float, face_ids: Sequence[int] | None = None) -> np.ndarray:
    """Rows of (similarity, face id, neighbour id) at or above the threshold: all of them, or those of the
    given faces. Read in slices into one array: no list of every edge as Python objects (10 million of them
    for a million faces)."""
    cursor = db.read().cursor()
    cursor.row_factory = None
    query = "SELECT similarity, face_id, neighbour_id FROM face_neighbours WHERE similarity >= ?"
    if face_ids is None:
        return rows_as_array(cursor.execute(query, (threshold,)))
    found = []
    for start in range(0, len(face_ids), 500):
        part = list(face_ids[start : start + 500])
        found.append(
            rows_as_array(cursor.execute(f"{query} AND face_id IN ({','.join('?' * len(part))})", [threshold, *part]))
        )
    return np.concatenate(found) if found else np.zeros((0, 3))


def rows_as_array(cursor, dtype=np.float64, columns: int = 3, size: int = 100_000) -> np.ndarray:
    """A query's rows as one array, read a slice at a time: never a list of every row as Python objects."""
    parts = []
    while rows := cursor.fetchmany(size):
        parts.append(np.array(rows, dtype))
    return np.concatenate(parts) if parts else np.zeros((0, columns), dtype)


# Edges below this are never kept by a graph built in bulk: no answer or grouping uses them (the lowest
# threshold that makes sense for these embedders is above it; different people reach about 0.45).
FLOOR = 0.3


def blocked_knn(
    vectors: np.ndarray, k: int, block: int = 1024, should_stop: Callable[[], bool] = lambda: False
) -> Iterator[np.ndarray]:
    """Rows of (similarity, i, j): each row's k most similar other rows at or above FLOOR, a block of rows at a
    time, by row and most similar first. For a library that has no graph yet (a database from before it was
    kept). n x block products with reused buffers, so memory stays at block x n floats.
    """
    count = len(vectors)
    products = np.empty((min(block, count), count), np.float32)
    above = np.empty((min(block, count), count), bool)
    for start in range(0, count, block):
        if should_stop():
            return
        rows = vectors[start : start + block]
        sims, mask = products[: len(rows)], above[: len(rows)]
        np.matmul(rows, vectors.T, out=sims)
        sims[np.arange(len(rows)), start + np.arange(len(rows))] = -2.0  # not its own neighbour
        row, col, values = _top_k(sims, mask, k)
        yield np.column_stack([values, start + row, col])


def _top_k(sims: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's k largest values at or above FLOOR, as (row, column, value) by row, largest first. Most
    rows have a few candidates above the floor, and sorting only those costs a fifth of a partial sort of
    every row; a row with candidates in more than an eighth of the columns (someone with thousands of photos
    in a small library) costs less partially sorted: one person of 20,000 faces took 210 s, now 3 s."""
    np.greater_equal(sims, FLOOR, out=mask)
    dense = mask.sum(axis=1) > max(4 * k, sims.shape[1] // 8)
    parts = []
    if dense.any():
        many = np.flatnonzero(dense)
        candidates = sims[many]
        cols = np.argpartition(candidates, -k, axis=1)[:, -k:]
        parts.append((np.repeat(many, k), cols.ravel(), np.take_along_axis(candidates, cols, axis=1).ravel()))
        mask[many] = False
    row, col = np.divmod(np.flatnonzero(mask), sims.shape[1])
    parts.append((row, col, sims[row, col]))
    row, col, values = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((-values, row))  # by row, most similar first
    row, col, values = row[order], col[order], values[order]
    keep = np.arange(len(row)) - np.searchsorted(row, row) < k
    return row[keep], col[keep], values[keep]
