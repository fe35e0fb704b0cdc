"""The ingest worker: drains the queue, one file at a time, each result stored in one transaction.

An item leaves the queue only in the transaction that stores its result, so a crash at any moment
leaves it queued and it is simply done again on restart: nothing lost, nothing stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import jobs
from .db import Database
from .faces import FaceIndex
from .migrations import NOW
from .pipeline import Analysis, DecodeError, Pipeline

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 512 << 20
PRUNE_EVERY_SECONDS = 3600


class IngestFailure(Exception):
    """This file cannot be analysed; the message is stored as its reason."""


def store_failure(db: Database, item: jobs.QueuedItem, reason: str) -> None:
    with db.write(durable=False) as conn:
        conn.execute(
            "UPDATE images SET status = 'failed', error = ? WHERE path = ? AND status != 'done'",
            (reason, item.path),
        )
        jobs.finish_item(conn, item.id, reason)


def store_unchanged(db: Database, item: jobs.QueuedItem, size: int, mtime_ns: int) -> None:
    with db.write(durable=False) as conn:
        conn.execute("UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, item.path))
        jobs.finish_item(conn, item.id)


def store_analysis(
    db: Database,
    faces: FaceIndex,
    item: jobs.QueuedItem,
    size: int,
    mtime_ns: int,
    digest: str,
    analysis: Analysis | None,
    donor_id: int | None = None,
) -> None:
    """Store a fresh analysis, or copy the one of a byte-identical image (`donor_id`)."""
    with db.write(durable=False) as conn:
        image = conn.execute("SELECT id FROM images WHERE path = ?", (item.path,)).fetchone()
        if image is None:  # deleted from the index while it was being analysed
            jobs.finish_item(conn, item.id, "The image was removed from the index.")
            return
        image_id = image["id"]
        conn.execute("DELETE FROM objects WHERE image_id = ?", (image_id,))
        faces.remove_image(conn, image_id)
        conn.execute("DELETE FROM faces WHERE image_id = ?", (image_id,))
        if donor_id is not None:
            conn.execute(
                "UPDATE images SET (width, height, taken_at) ="
                " (SELECT width, height, taken_at FROM images WHERE id = ?) WHERE id = ?",
                (donor_id, image_id),
            )
            conn.execute(
                "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2)"
                " SELECT ?, label, score, x1, y1, x2, y2 FROM objects WHERE image_id = ?",
                (image_id, donor_id),
            )
            faces.copy(conn, donor_id, image_id)
        else:
            conn.execute(
                "UPDATE images SET width = ?, height = ?, taken_at = ? WHERE id = ?",
                (analysis.width, analysis.height, analysis.taken_at, image_id),
            )
            conn.executemany(
                "INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(image_id, o.label, o.score, *o.box) for o in analysis.objects],
            )
            faces.add(conn, image_id, analysis.faces, analysis.face_vectors)
        conn.execute(
            "UPDATE images SET size = ?, mtime_ns = ?, content_hash = ?, status = 'done', error = NULL,"
            f" analysed_at = {NOW} WHERE id = ?",
            (size, mtime_ns, digest, image_id),
        )
        jobs.finish_item(conn, item.id)


def read_file(path: str) -> tuple[os.stat_result, bytes]:
    try:
        stat = os.stat(path)
        if stat.st_size > MAX_FILE_BYTES:
            raise IngestFailure(f"The file is {stat.st_size} bytes; files over {MAX_FILE_BYTES} are skipped.")
        with open(path, "rb") as f:
            return stat, f.read()
    except FileNotFoundError:
        raise IngestFailure("The file no longer exists.") from None
    except OSError as error:
        raise IngestFailure(f"Cannot read the file: {error.strerror or error}.") from None


def face_count(db: Database) -> int:
    return db.read().execute("SELECT count(*) FROM faces").fetchone()[0]


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


def ingest_one(db: Database, faces: FaceIndex, pipeline: Pipeline, locks: ContentLocks, item: jobs.QueuedItem) -> None:
    """Analyse one queued file unless it is unchanged or a byte-identical copy was already analysed."""
    conn = db.read()
    known = conn.execute(
        "SELECT size, mtime_ns, content_hash, status FROM images WHERE path = ?", (item.path,)
    ).fetchone()
    try:
        stat = os.stat(item.path)
        if (
            known
            and known["status"] == "done"
            and (known["size"], known["mtime_ns"])
            == (
                stat.st_size,
                stat.st_mtime_ns,
            )
        ):
            return store_unchanged(db, item, stat.st_size, stat.st_mtime_ns)
        stat, data = read_file(item.path)
    except FileNotFoundError:
        return store_failure(db, item, "The file no longer exists.")
    except OSError as error:  # from the stat: no permission, a vanished disk
        return store_failure(db, item, f"Cannot read the file: {error.strerror or error}.")
    except IngestFailure as failure:
        return store_failure(db, item, str(failure))
    digest = hashlib.sha256(data).hexdigest()
    if known and known["status"] == "done" and known["content_hash"] == digest:
        return store_unchanged(db, item, stat.st_size, stat.st_mtime_ns)
    with locks.hold(digest):
        donor = conn.execute(
            "SELECT id FROM images WHERE content_hash = ? AND status = 'done' AND path != ? LIMIT 1",
            (digest, item.path),
        ).fetchone()
        if donor is not None:
            return store_analysis(db, faces, item, stat.st_size, stat.st_mtime_ns, digest, None, donor["id"])
        try:
            analysis = pipeline.analyse(data, digest)
        except DecodeError as error:
            return store_failure(db, item, str(error))
        store_analysis(db, faces, item, stat.st_size, stat.st_mtime_ns, digest, analysis)


class IngestWorkers:
    """A feeder thread hands queued items to N analysis threads; each owns its pipeline's interpreters.

    `busy` maps each analysis thread to the file in hand and when it started, so /health can tell a stuck
    image from an idle queue.
    """

    def __init__(
        self,
        db: Database,
        faces: FaceIndex,
        make_pipeline: Callable[[], Pipeline],
        workers: int,
        recluster_after: int,
        keep_jobs_days: int = 30,
        idle_poll_seconds: float = 5.0,
    ):
        self.db = db
        self.faces = faces
        self.recluster_after = recluster_after
        self.keep_jobs_days = keep_jobs_days
        self._last_prune = -PRUNE_EVERY_SECONDS  # first prune at the first idle moment
        self.faces_at_last_recluster = face_count(db)
        self.make_pipeline = make_pipeline
        self.idle_poll_seconds = idle_poll_seconds
        self.workers = workers
        self.busy: dict[str, tuple[str, float]] = {}
        self._locks = ContentLocks()
        self._handoff: queue.Queue[jobs.QueuedItem | None] = queue.Queue(maxsize=workers)
        self._analysers: list[threading.Thread] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="ingest-feed", daemon=True)

    def start(self) -> None:
        # Build every pipeline first: a model that fails to open stops start-up, not a thread later.
        pipelines = [self.make_pipeline() for _ in range(self.workers)]
        self._analysers = [
            threading.Thread(target=self._analyse, args=(pipeline,), name=f"ingest-{n}", daemon=True)
            for n, pipeline in enumerate(pipelines)
        ]
        for thread in self._analysers:
            thread.start()
        self._feeder.start()

    def notify(self) -> None:
        """New work was queued: stop waiting."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the images in hand, leave the rest queued, then stop."""
        self._stop.set()
        self._wake.set()
        if self._feeder.is_alive():
            self._feeder.join()
        while True:  # items handed over but not started stay queued in the database
            try:
                self._handoff.get_nowait()
            except queue.Empty:
                break
        for thread in self._analysers:
            if thread.is_alive():
                self._handoff.put(None)
        for thread in self._analysers:
            if thread.is_alive():
                thread.join()

    def status(self) -> dict:
        now = time.monotonic()
        return {
            "workers": self.workers,
            "running": bool(self._analysers) and all(thread.is_alive() for thread in self._analysers),
            "busy": [{"path": path, "seconds": round(now - since, 3)} for path, since in list(self.busy.values())],
        }

    def _feed(self) -> None:
        last_id = 0
        while not self._stop.is_set():
            items = jobs.queued_after(self.db, last_id, limit=self.workers * 4)
            if not items:
                self._recluster_if_due()
                self._prune_if_due()
                self._wake.wait(self.idle_poll_seconds)
                self._wake.clear()
                continue
            for item in items:
                while not self._stop.is_set():
                    try:
                        self._handoff.put(item, timeout=0.2)
                        last_id = item.id
                        break
                    except queue.Full:
                        continue

    def _prune_if_due(self) -> None:
        """Once an hour at most (each prune is a write, and a write empties the listing caches)."""
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            jobs.prune(self.db, self.keep_jobs_days)

    def _recluster_if_due(self) -> None:
        """After a large ingest (or removal), once the queue is empty, re-cluster every face."""
        if self.busy or abs(face_count(self.db) - self.faces_at_last_recluster) < self.recluster_after:
            return
        started = time.monotonic()
        people = self.faces.recluster(self.db)
        if people is not None:
            self.faces_at_last_recluster = face_count(self.db)
            log.info("re-clustered faces into %d people in %.1fs", people, time.monotonic() - started)

    def _analyse(self, pipeline: Pipeline) -> None:
        name = threading.current_thread().name
        while (item := self._handoff.get()) is not None:
            self.busy[name] = (item.path, time.monotonic())
            try:
                ingest_one(self.db, self.faces, pipeline, self._locks, item)
            except Exception:
                # A bug must not wedge the queue on one file: record it against that file and go on.
                log.exception("ingest of %s failed unexpectedly", item.path)
                store_failure(self.db, item, "Internal error while analysing this image; see the log.")
            finally:
                self.busy.pop(name, None)
