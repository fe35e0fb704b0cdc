"""The background work, as supervised loops: one analysis loop per worker, and one housekeeping loop.

An analysis step claims one queued item in the database and analyses it; housekeeping re-clusters faces and
forgets old jobs when the queue is idle. Start-up first recovers what a crash left running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import disk, jobs, reanalysis
from .db import Database
from .faces import FaceIndex, faces_changed
from .ingest import ContentLocks, Ingest
from .paths import LibraryRoots
from .pipeline import Pipeline
from .supervisor import Supervisor

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 3600


class ClaimGate:
    """Items run side by side, except one whose earlier attempt never finished: it runs alone, and nothing
    else is claimed meanwhile, so that if it kills the process again the crash is counted against it and not
    against an innocent neighbour."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._alone = False

    @contextmanager
    def claim(self, db: Database) -> Iterator[jobs.QueuedItem | None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._alone)
            item = jobs.claim(db)
            if item is not None:
                self._alone = item.attempts > 1
                self._changed.wait_for(lambda: not self._alone or self._running == 0)
                self._running += 1
        if item is None:
            yield None
            return
        try:
            yield item
        finally:
            with self._changed:
                self._running -= 1
                self._alone = False
                self._changed.notify_all()


class Analyser:
    """One analysis loop: claim an item, analyse it, store the outcome."""

    def __init__(self, ingest: Ingest, gate: ClaimGate, busy: dict, name: str):
        self.ingest = ingest
        self.db = ingest.db
        self.gate = gate
        self.busy = busy
        self.name = name
        self.held: jobs.QueuedItem | None = None  # claimed, outcome not stored yet

    def step(self) -> float | None:
        if self.held is not None:  # the last step failed before storing an outcome: put the item back
            jobs.release(self.db, self.held.id)
            self.held = None
        if disk.room(self.db.path.parent).full:  # claim nothing: there may be no room for its results
            raise disk.full_error(self.db.path.parent)
        with self.gate.claim(self.db) as item:
            if item is None:
                return IDLE_POLL_SECONDS
            self.held = item
            self.busy[self.name] = (item.path, time.monotonic())
            try:
                self.ingest.run(item)
            finally:
                self.busy.pop(self.name, None)
            self.held = None
        return None

    def release(self) -> None:
        """At stop: an item claimed but not finished goes back to the queue."""
        if self.held is not None:
            jobs.release(self.db, self.held.id)
            self.held = None


class IngestWorkers:
    """The analysis loops and housekeeping, run by the supervisor; `busy` tells /health what is in hand."""

    def __init__(
        self,
        supervisor: Supervisor,
        db: Database,
        faces: FaceIndex,
        make_pipeline: Callable[[], Pipeline],
        roots: LibraryRoots,
        fingerprint: str,
        workers: int,
        recluster_after: int,
        keep_jobs_days: int = 30,
    ):
        self.db = db
        self.fingerprint = fingerprint
        self.faces = faces
        self.make_pipeline = make_pipeline
        self.roots = roots
        self.workers = workers
        self.recluster_after = recluster_after
        self.keep_jobs_days = keep_jobs_days
        self.supervisor = supervisor
        self.busy: dict[str, tuple[str, float]] = {}
        self._analysers: list[Analyser] = []
        self._last_prune = -PRUNE_EVERY_SECONDS  # first prune at the first idle moment

    def start(self) -> None:
        crashed = jobs.recover(self.db)
        if crashed:
            log.warning("%d file(s) crashed the analysis %d times and were failed", crashed, jobs.MAX_ATTEMPTS)
        reanalysis.queue_stale(self.db, self.fingerprint)
        # Build every pipeline first: a model that fails to open stops start-up, not a thread later.
        pipelines = [self.make_pipeline() for _ in range(self.workers)]
        locks, gate = ContentLocks(), ClaimGate()
        for n, pipeline in enumerate(pipelines):
            name = f"ingest-{n}"
            ingest = Ingest(self.db, self.faces, pipeline, locks, self.roots, self.fingerprint)
            self._analysers.append(Analyser(ingest, gate, self.busy, name))
            self.supervisor.start(name, self._analysers[-1].step)
        self.supervisor.start("housekeeping", self._housekeeping)

    def notify(self) -> None:
        """New work was queued: stop waiting."""
        self.supervisor.wake("ingest-")

    def stop(self) -> None:
        """Once the supervisor has stopped the loops (each finishing the image in hand): put back what a failed
        step left claimed, and let the interpreters go."""
        for analyser in self._analysers:
            try:
                analyser.release()
            except Exception:  # a full disk, say: the item stays claimed and start-up queues it again
                log.warning("could not put %s back in the queue", analyser.held.path, exc_info=True)
        self._analysers.clear()  # and their interpreters with them

    def status(self) -> dict:
        now = time.monotonic()
        return {
            "workers": self.workers,
            "busy": [{"path": path, "seconds": round(now - since, 3)} for path, since in list(self.busy.values())],
        }

    def _housekeeping(self) -> float:
        stopping = lambda: self.supervisor.stopping  # noqa: E731
        self.faces.repair(self.db, stopping)
        if stopping():
            return IDLE_POLL_SECONDS
        self._recluster_if_due()  # incremental, in short transactions: it does not wait for the queue
        if jobs.is_idle(self.db):
            reanalysis.drop_old_vectors(self.db, self.faces.table)
            self._prune_if_due()
        return IDLE_POLL_SECONDS

    def _prune_if_due(self) -> None:
        """Once an hour at most (each prune is a write, and a write empties the listing caches)."""
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
            jobs.prune(self.db, self.keep_jobs_days)
            self._last_prune = time.monotonic()

    def _recluster_if_due(self) -> None:
        """Once this many faces came or went: group again the people they touch."""
        changed = faces_changed(self.db)
        if changed < self.recluster_after:
            return
        log.info("re-clustering faces (%d added or removed since the last time)", changed)
        started = time.monotonic()
        outcome = self.faces.recluster(self.db, should_stop=lambda: self.supervisor.stopping)
        if outcome is not None:
            log.info(
                "re-clustered %d faces into %d people in %.1fs (%d moved, longest write %.0f ms)",
                outcome.faces,
                outcome.people,
                time.monotonic() - started,
                outcome.moved,
                outcome.longest_write_ms,
            )
