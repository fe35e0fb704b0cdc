"""Analysing one claimed queue item and storing what was found, each outcome in one transaction.

The item leaves the queue only in the transaction that stores its outcome, so a crash at any moment leaves it
claimed, and the next start hands it out again (jobs.recover): nothing lost, nothing stored twice.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import jobs
from .catalog import unused_hashes
from .db import Database
from .disk import full_error
from .errors import DiskFull
from .faces import FaceIndex
from .migrations import NOW
from .paths import LibraryRoots, stat_or_none
from .pipeline import Analysis, DecodeError, Pipeline
from .source import MAX_FILE_BYTES, SourceError, open_source
from .thumbnails import forget

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal error while analysing this image; see the log."


@dataclass(frozen=True)
class FileFacts:
    """What identifies the content that was analysed, and what analysed it."""

    size: int
    mtime_ns: int
    digest: str
    fingerprint: str


def store_failure(db: Database, item: jobs.QueuedItem, reason: str, stat: os.stat_result | None = None) -> None:
    """The file fails alone, with its reason; its size and mtime let add-folder skip it until it changes."""
    size, mtime_ns = (stat.st_size, stat.st_mtime_ns) if stat else (None, None)
    with db.write(durable=False) as conn:
        conn.execute(
            "UPDATE images SET status = 'failed', error = ?, size = coalesce(?, size),"
            " mtime_ns = coalesce(?, mtime_ns) WHERE path = ? AND status != 'done'",
            (reason, size, mtime_ns, item.path),
        )
        jobs.finish_item(conn, item.id, reason)


def store_unchanged(db: Database, item: jobs.QueuedItem, stat: os.stat_result) -> None:
    with db.write(durable=False) as conn:
        conn.execute(  # still there, or there again
            "UPDATE images SET size = ?, mtime_ns = ?, missing_since = NULL WHERE path = ?",
            (stat.st_size, stat.st_mtime_ns, item.path),
        )
        jobs.finish_item(conn, item.id)


@contextmanager
def replacing_results(db: Database, faces: FaceIndex, item: jobs.QueuedItem, facts: FileFacts) -> Iterator:
    """One transaction: clear the image's old results, let the caller store new ones, mark it done and finish
    the item. Yields (conn, image_id), or (conn, None) when the image left the index meanwhile."""
    with db.write(durable=False) as conn:
        image = conn.execute("SELECT id FROM images WHERE path = ?", (item.path,)).fetchone()
        if image is None:
            jobs.finish_item(conn, item.id, "The image was removed from the index.")
            yield conn, None
            return
        image_id = image["id"]
        conn.execute("DELETE FROM objects WHERE image_id = ?", (image_id,))
        yield conn, image_id
        conn.execute(
            "UPDATE images SET size = ?, mtime_ns = ?, content_hash = ?, fingerprint = ?, status = 'done',"
            f" error = NULL, analysed_at = {NOW} WHERE id = ?",
            (facts.size, facts.mtime_ns, facts.digest, facts.fingerprint, image_id),
        )
        jobs.finish_item(conn, item.id)


def store_analysis(db: Database, faces: FaceIndex, item: jobs.QueuedItem, facts: FileFacts, analysis: Analysis):
    search = faces.search(analysis.face_vectors)  # the slow part of assigning people, before the transaction
    with replacing_results(db, faces, item, facts) as (conn, image_id):
        if image_id is None:
            return
        conn.execute(
            "UPDATE images SET width = ?, height = ?, taken_at = ? WHERE id = ?",
            (analysis.width, analysis.height, analysis.taken_at, image_id),
        )
        conn.executemany(
            "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(image_id, o.label, o.score, *o.box) for o in analysis.objects],
        )
        # Analysed again (a new model, an edited file): a face in the place of an old one keeps its person.
        inherited = faces.people_by_box(conn, image_id, analysis.faces)
        remove_faces(conn, faces, image_id)
        faces.add(conn, image_id, analysis.faces, analysis.face_vectors, analysis.face_good, search, inherited)


class DonorGone(Exception):
    """The byte-identical image whose analysis was to be copied left the index meanwhile."""


def store_copy(db: Database, faces: FaceIndex, item: jobs.QueuedItem, facts: FileFacts, donor_id: int) -> None:
    """Give the image the analysis of a byte-identical one, checked inside the transaction: a donor deleted at
    the same moment must not leave this image `done` with nothing."""
    with replacing_results(db, faces, item, facts) as (conn, image_id):
        if image_id is None:
            return
        donor = conn.execute(
            "SELECT width, height, taken_at FROM images WHERE id = ? AND status = 'done' AND content_hash = ?"
            " AND fingerprint = ?",
            (donor_id, facts.digest, facts.fingerprint),
        ).fetchone()
        if donor is None:
            raise DonorGone
        remove_faces(conn, faces, image_id)
        conn.execute("UPDATE images SET width = ?, height = ?, taken_at = ? WHERE id = ?", (*donor, image_id))
        conn.execute(
            "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2)"
            " SELECT ?, label, score, x1, y1, x2, y2 FROM objects WHERE image_id = ?",
            (image_id, donor_id),
        )
        faces.copy(conn, donor_id, image_id)


def remove_faces(conn, faces: FaceIndex, image_id: int) -> None:
    faces.remove_image(conn, image_id)
    conn.execute("DELETE FROM faces WHERE image_id = ?", (image_id,))


def store_move(db: Database, faces: FaceIndex, item: jobs.QueuedItem, facts: FileFacts) -> bool:
    """The content turned up at a new path while its old path is gone from disk: a move (while the appliance
    was down, or through a copy-and-delete). The old image takes the new path and keeps its id, analysis,
    people, names and albums; nothing is analysed. Returns False when no such image is waiting."""
    with db.write(durable=False) as conn:
        # Gone from disk: marked so by the watcher, or not yet noticed (the folder was renamed while the
        # appliance was down, and a client added the new one before the reconcile scan came by).
        moved = next(
            (
                row
                for row in conn.execute(
                    "SELECT id, path, missing_since FROM images WHERE content_hash = ? AND status = 'done'"
                    " AND path != ? ORDER BY missing_since IS NULL, missing_since DESC",
                    (facts.digest, item.path),
                )
                if row["missing_since"] is not None or not os.path.lexists(row["path"])
            ),
            None,
        )
        if moved is None:
            return False
        placeholder = conn.execute("SELECT id FROM images WHERE path = ?", (item.path,)).fetchone()
        if placeholder is not None:  # the new path's own row: its albums follow, the rest is replaced
            conn.execute(
                "UPDATE OR IGNORE album_images SET image_id = ? WHERE image_id = ?", (moved[0], placeholder[0])
            )
            remove_faces(conn, faces, placeholder[0])
            conn.execute("DELETE FROM images WHERE id = ?", (placeholder[0],))
        conn.execute(
            "UPDATE images SET path = ?, size = ?, mtime_ns = ?, missing_since = NULL WHERE id = ?",
            (item.path, facts.size, facts.mtime_ns, moved[0]),
        )
        jobs.finish_item(conn, item.id)
    return True


class ContentLocks:
    """One analysis per content hash at a time, so byte-identical files met by two workers are analysed once."""

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, digest: str) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: digest not in self._busy)
            self._busy.add(digest)
        try:
            yield
        finally:
            with self._changed:
                self._busy.discard(digest)
                self._changed.notify_all()


@dataclass
class Ingest:
    """What analysing a queue item needs; one per analysis thread (the pipeline's interpreters are its own)."""

    db: Database
    faces: FaceIndex
    pipeline: Pipeline
    locks: ContentLocks
    roots: LibraryRoots
    fingerprint: str  # what analyses now: results of another are out of date

    def run(self, item: jobs.QueuedItem) -> None:
        """Analyse one item and store its outcome. A full disk leaves it claimed and propagates (the caller
        puts it back); any other surprise fails this file alone."""
        try:
            self._ingest(item)
        except DiskFull:
            raise
        except OSError as error:
            if error.errno == errno.ENOSPC:  # a thumbnail that did not fit
                raise full_error(self.db.path.parent) from error
            log.exception("ingest of %s failed unexpectedly", item.path)
            store_failure(self.db, item, INTERNAL_ERROR)
        except Exception:
            log.exception("ingest of %s failed unexpectedly", item.path)
            store_failure(self.db, item, INTERNAL_ERROR)

    def _ingest(self, item: jobs.QueuedItem) -> None:
        """Skip an unchanged file, claim the image of a moved one, copy the analysis of a byte-identical one,
        else analyse it."""
        known = (
            self.db.read()
            .execute(
                "SELECT size, mtime_ns, content_hash, status, fingerprint FROM images WHERE path = ?", (item.path,)
            )
            .fetchone()
        )
        up_to_date = known is not None and known["status"] == "done" and known["fingerprint"] == self.fingerprint
        try:
            with open_source(item.path, self.roots, MAX_FILE_BYTES) as source:
                stat = source.stat
                if up_to_date and (known["size"], known["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
                    return store_unchanged(self.db, item, stat)
                facts = FileFacts(stat.st_size, stat.st_mtime_ns, source.digest, self.fingerprint)
                if up_to_date and known["content_hash"] == facts.digest:
                    return store_unchanged(self.db, item, stat)
                with self.locks.hold(facts.digest):
                    if not store_move(self.db, self.faces, item, facts) and not self._copy_from_twin(item, facts):
                        try:
                            analysis = self.pipeline.analyse(source.file, facts.digest)
                        except DecodeError as error:
                            return store_failure(self.db, item, str(error), stat)
                        store_analysis(self.db, self.faces, item, facts, analysis)
        except SourceError as error:  # no permission, say: skipped until it changes
            return store_failure(self.db, item, str(error), stat_or_none(item.path))
        if known is not None and known["content_hash"] not in (None, facts.digest):
            self._forget_thumbnail(known["content_hash"])

    def _forget_thumbnail(self, digest: str) -> None:
        """The file's old content is gone: its thumbnail too, unless another image still shows it."""
        forget(self.pipeline.thumbnails_dir, unused_hashes(self.db.read(), [digest]))

    def _copy_from_twin(self, item: jobs.QueuedItem, facts: FileFacts) -> bool:
        donor = (
            self.db.read()
            .execute(
                "SELECT id FROM images WHERE content_hash = ? AND status = 'done' AND fingerprint = ?"
                " AND missing_since IS NULL AND path != ? LIMIT 1",
                (facts.digest, facts.fingerprint, item.path),
            )
            .fetchone()
        )
        if donor is None:
            return False
        try:
            store_copy(self.db, self.faces, item, facts, donor["id"])
        except DonorGone:
            return False
        return True
