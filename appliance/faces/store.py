"""Face embeddings: durable in a sqlite-vec table, searched in an in-memory matrix.

Measured at 100,000 faces of 128 dimensions on this machine: a KNN query takes 29 ms in sqlite-vec (brute
force) and 2.3 ms as one NumPy product over the matrix; at 1,000,000 faces the matrix is 512 MiB and a query
about 25 ms. So sqlite-vec keeps the vectors across restarts and the matrix answers the questions.

Rows change inside the caller's write transaction and in memory at once. A rolled-back transaction can leave
memory ahead (a vector of a face that does not exist) or behind (a vector dropped that still exists): answers
always join the faces table, so the first is harmless, and `matches_database` tells housekeeping to reload.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np

from ..db import Database

# Vector tables of older layouts and of other embedders share these prefixes (see reanalysis.drop_old_vectors).
TABLE_PREFIX = "face_embeddings_"
LOAD_SLICE = 20_000  # vectors read at a time at start (10 MB of blobs)


class FaceVectors:
    def __init__(self, dimensions: int):
        self.dimensions = dimensions
        self.table = f"{TABLE_PREFIX}{dimensions}"
        self._lock = threading.Lock()
        self._matrix = np.zeros((0, dimensions), np.float32)
        self._ids = np.zeros(0, np.int64)  # face id per row; -1 for a free row
        self._row_of: dict[int, int] = {}
        self._free: list[int] = []
        self._sequence = 0  # counts puts, so an assignment can see what was added after its search
        self._added: list[tuple[int, int]] = []  # (sequence, face id) of recent puts

    # -- the durable table ---------------------------------------------------------------------------------

    def create_table(self, db: Database) -> None:
        """One table per embedding size (vectors of two embedders are not comparable). An older layout of the
        same size (partitioned by person, `face_vectors_N`) is copied over once and dropped."""
        old = f"face_vectors_{self.dimensions}"
        with db.write() as conn:
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table}"
                f" USING vec0(embedding float[{self.dimensions}] distance_metric=cosine)"
            )
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (old,)).fetchone():
                conn.execute(f"INSERT INTO {self.table} (rowid, embedding) SELECT rowid, embedding FROM {old}")
                conn.execute(f"DROP TABLE {old}")

    def load(self, db: Database) -> int:
        """Fill the matrix from the table (at start, and whenever memory and table disagree), a slice at a time:
        a million vectors read whole as bytes, joined and copied took three times the matrix's 512 MiB."""
        with db.snapshot() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            (count,) = cursor.execute(f"SELECT count(*) FROM {self.table}").fetchone()
            matrix, ids = np.empty((count, self.dimensions), np.float32), np.empty(count, np.int64)
            cursor.execute(f"SELECT rowid, embedding FROM {self.table} ORDER BY rowid")
            filled = 0
            while rows := cursor.fetchmany(LOAD_SLICE):
                ids[filled : filled + len(rows)] = [row[0] for row in rows]
                vectors = np.frombuffer(b"".join(row[1] for row in rows), np.float32)
                matrix[filled : filled + len(rows)] = vectors.reshape(len(rows), self.dimensions)
                filled += len(rows)
        with self._lock:
            self._matrix, self._ids = matrix, ids
            self._row_of = {face_id: row for row, face_id in enumerate(ids.tolist())}
            self._free = []
        return count

    def matches_database(self, db: Database) -> bool:
        (stored,) = db.read().execute(f"SELECT count(*) FROM {self.table}").fetchone()
        return stored == len(self._row_of)

    # -- changes, inside the caller's transaction ------------------------------------------------------------

    def put(self, conn, face_id: int, vector: np.ndarray) -> None:
        vector = np.ascontiguousarray(vector, np.float32)
        conn.execute(f"INSERT OR REPLACE INTO {self.table} (rowid, embedding) VALUES (?, ?)", (face_id, vector))
        with self._lock:
            row = self._row_of.get(face_id)
            if row is None:
                row = self._free.pop() if self._free else self._grow()
                self._row_of[face_id] = row
                self._ids[row] = face_id
            self._matrix[row] = vector
            self._sequence += 1
            self._added.append((self._sequence, face_id))
            del self._added[:-1000]  # an assignment's search is milliseconds old: a short memory will do

    def drop(self, conn, face_ids: Sequence[int]) -> None:
        conn.executemany(f"DELETE FROM {self.table} WHERE rowid = ?", [(face_id,) for face_id in face_ids])
        with self._lock:
            for face_id in face_ids:
                row = self._row_of.pop(face_id, None)
                if row is not None:
                    self._ids[row] = -1
                    self._matrix[row] = 0.0  # a free row matches nothing
                    self._free.append(row)

    def _grow(self) -> int:
        """A new row at the end, doubling the arrays when full (amortised: no copy per face)."""
        used = len(self._row_of) + len(self._free)
        if used == len(self._ids):
            size = max(1024, 2 * len(self._ids))
            matrix = np.zeros((size, self.dimensions), np.float32)
            matrix[:used] = self._matrix[:used]
            ids = np.full(size, -1, np.int64)
            ids[:used] = self._ids[:used]
            self._matrix, self._ids = matrix, ids
        return used

    # -- questions ---------------------------------------------------------------------------------------------

    @property
    def sequence(self) -> int:
        return self._sequence

    def __len__(self) -> int:
        return len(self._row_of)

    def vectors(self, face_ids: Iterable[int]) -> tuple[list[int], np.ndarray]:
        """The vectors of those faces that have one, in the order given."""
        face_ids = list(face_ids)
        with self._lock:
            rows = [self._row_of.get(face_id) for face_id in face_ids]
            found = [face_id for face_id, row in zip(face_ids, rows, strict=True) if row is not None]
            return found, self._matrix[[row for row in rows if row is not None]]  # indexing by a list copies

    def nearest(self, vector: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """(face id, cosine similarity) of the k stored faces most like `vector`, best first."""
        with self._lock:
            matrix, ids = self._matrix, self._ids  # the arrays as they are now; a grow makes new ones
            used = len(self._row_of) + len(self._free)
        if used == 0:
            return []
        similarity = matrix[:used] @ np.asarray(vector, np.float32)
        similarity[ids[:used] < 0] = -2.0
        if exclude is not None and exclude in self._row_of:
            similarity[self._row_of[exclude]] = -2.0
        take = min(k, used)
        best = np.argpartition(-similarity, take - 1)[:take]
        best = best[np.argsort(-similarity[best])]
        return [(int(ids[row]), float(similarity[row])) for row in best if ids[row] >= 0]

    def added_since(self, sequence: int) -> list[int]:
        """Faces put after `sequence` (None of them may be committed: callers check the faces table)."""
        with self._lock:
            return [face_id for seq, face_id in self._added if seq > sequence]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, matrix) of every stored vector, for a re-clustering or a graph rebuild (a copy)."""
        with self._lock:
            used = len(self._row_of) + len(self._free)
            keep = self._ids[:used] >= 0
            return self._ids[:used][keep].copy(), self._matrix[:used][keep].copy()
