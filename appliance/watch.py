"""The index follows the disk: the library roots are watched (inotify, through watchdog) and reconciled at start
and every `reconcile_minutes`, for whatever the events missed (an overflow, the appliance being down, a network
file system without events).

A producer like add-folder: new and changed files go into the queue once stable (a half-copied file is not
analysed); moves and removals are recorded in the index. Nothing is analysed here.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from . import catalog, jobs
from .db import Database
from .faces import FaceIndex
from .paths import LibraryRoots, is_hidden, is_image_name, is_utf8_name
from .thumbnails import forget

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
STABLE_SECONDS = 3.0  # size and mtime unchanged this long: the copy is complete
# A file gone from disk is hidden at once but forgotten only after this: a move noticed late (the appliance
# was down, a disk was unplugged) still finds its image, names and albums.
MISSING_GRACE_SECONDS = 24 * 3600
LIMITED_RECONCILE_MINUTES = 10  # how often to scan when inotify cannot watch everything
# The catch-up scan after a start waits a little: the API is up first, and a client that adds a folder at
# once gets the answer it always did (its job, with every file) rather than finding the scan there first.
FIRST_RECONCILE_SECONDS = 30


def count_folders(root: Path) -> int:
    """The folders watchdog watches below a root (it watches them all, symlinks not followed)."""
    return sum(1 for _ in os.walk(root, followlinks=False))


def inotify_watches() -> int | None:
    """How many inotify watches this process holds, from the kernel's fdinfo (None where there is no /proc)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    count += sum(1 for line in info if line.startswith("inotify wd:"))
        except OSError:
            continue
    return count


@dataclass
class Change:
    kind: str  # "changed", "removed", "moved"
    path: str
    target: str | None = None
    folder: bool = False


class EventRecorder(FileSystemEventHandler):
    """Runs in watchdog's threads: only records what happened, in order, for the watch loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[Change] = []

    def take(self) -> list[Change]:
        with self._lock:
            changes, self._changes = self._changes, []
        return changes

    def record(self, change: Change) -> None:
        with self._lock:
            self._changes.append(change)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.record(Change("changed", os.fsdecode(event.src_path)))

    on_modified = on_closed = on_created

    def on_deleted(self, event: FileSystemEvent) -> None:
        self.record(Change("removed", os.fsdecode(event.src_path), folder=event.is_directory))

    def on_moved(self, event: FileSystemEvent) -> None:
        source, target = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
        self.record(Change("moved", source, target, folder=event.is_directory))


@dataclass
class Candidate:
    """A new or changed file waiting to be stable."""

    size: int
    mtime_ns: int
    since: float  # when it last changed


@dataclass
class WatchState:
    mode: str = "starting"  # "watching", "partly watched" or "scan only" (inotify's limit), "off"
    problem: str | None = None
    last_reconcile: str | None = None
    reconcile_seconds: float | None = None
    waiting: int = 0  # files waiting to be stable
    unavailable: list[str] = field(default_factory=list)


class LibraryWatch:
    def __init__(
        self,
        db: Database,
        faces: FaceIndex,
        roots: LibraryRoots,
        notify_queue,
        thumbnails_dir: Path,
        watch: bool,
        reconcile_minutes: int,
    ):
        self.db = db
        self.thumbnails_dir = thumbnails_dir
        self.faces = faces
        self.roots = roots
        self.notify_queue = notify_queue  # wakes the analysers after something was queued
        self.reconcile_seconds = reconcile_minutes * 60
        self.recorder = EventRecorder()
        self.candidates: dict[str, Candidate] = {}
        self.state = WatchState(mode="watching" if watch else "off")
        self._observer = Observer() if watch else None
        self._next_reconcile = time.monotonic() + FIRST_RECONCILE_SECONDS
        self._checked = False

    # -- start and stop ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._observer is None:
            return
        try:
            for root in self.roots.roots:
                if root.is_dir():
                    self._observer.schedule(self.recorder, str(root), recursive=True)
            self._observer.start()
        except OSError as error:
            self._observer = None
            self._fall_back(error)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(10)

    def _check_watches(self) -> None:
        """watchdog skips the folders it cannot watch without a word (only the root's failure is raised): count
        the kernel's watches of this process against the folders there are."""
        if self._observer is None or self.state.mode != "watching":
            return
        folders = sum(count_folders(root) for root in self.roots.roots if root.is_dir())
        watches = inotify_watches()
        if watches is not None and watches < folders:
            self._fall_back(OSError(errno.ENOSPC, f"{watches} of {folders} folders watched"))

    def _fall_back(self, error: OSError) -> None:
        if error.errno in (errno.ENOSPC, errno.EMFILE):
            limit = Path("/proc/sys/fs/inotify/max_user_watches")
            current = limit.read_text().strip() if limit.exists() else "?"
            problem = (
                f"inotify cannot watch every folder of the library (fs.inotify.max_user_watches = {current}):"
                f" new and removed photos are found by a scan every {LIMITED_RECONCILE_MINUTES} minutes instead."
                " Raise the limit: sudo sysctl fs.inotify.max_user_watches=524288"
            )
        else:
            problem = f"watching the library failed ({error}): it is scanned every {LIMITED_RECONCILE_MINUTES} minutes"
        log.warning("%s", problem)
        # Whatever could be watched still is; the scan comes more often for the rest.
        self.state.mode, self.state.problem = "partly watched" if self._observer else "scan only", problem
        self.reconcile_seconds = min(self.reconcile_seconds, LIMITED_RECONCILE_MINUTES * 60)

    def gone(self, path: str) -> None:
        """A route met an indexed file that is no longer there: the next tick hides it."""
        self.recorder.record(Change("removed", path))

    # -- the loop ----------------------------------------------------------------------------------------

    def step(self) -> float:
        """One tick: apply recorded events, queue what became stable, reconcile when due, forget what is gone."""
        changes = self.recorder.take()
        if changes:
            self._apply(changes)
        self._queue_stable()
        if not self._checked:
            self._check_watches()
            self._checked = True
        if time.monotonic() >= self._next_reconcile:
            self.reconcile()
            self._check_watches()
            self._next_reconcile = time.monotonic() + self.reconcile_seconds
        if jobs.is_idle(self.db):  # moves waiting in the queue claim their images first
            forget(self.thumbnails_dir, catalog.purge_missing(self.db, self.faces, MISSING_GRACE_SECONDS))
        self.state.waiting = len(self.candidates)
        return TICK_SECONDS

    def _wanted(self, path: str) -> bool:
        name = os.path.basename(path)
        return is_image_name(name) and not is_hidden(name) and is_utf8_name(path) and self.roots.contains(Path(path))

    def _apply(self, changes: list[Change]) -> None:
        """Events in the order they happened; moves and removals in one transaction (moves keep everything,
        removals hide), which is opened only when there are some."""
        if all(change.kind == "changed" for change in changes):
            for change in changes:
                self._apply_one(None, change)
            return
        with self.db.write() as conn:
            for change in changes:
                self._apply_one(conn, change)
        for change in changes:  # once the moves are committed, what is new in a moved-in folder waits too
            if change.kind == "moved" and change.folder and self.roots.contains(Path(change.target)):
                self._candidates_under(change.target)

    def _apply_one(self, conn, change: Change) -> None:
        if change.kind == "changed":
            if self._wanted(change.path):
                self.candidates.setdefault(change.path, Candidate(-1, -1, time.monotonic()))
        elif change.kind == "removed":
            self._forget_candidates(change.path, change.folder)
            if change.folder:
                catalog.mark_missing_under(conn, change.path)
            else:
                catalog.mark_missing(conn, [change.path])
        elif change.folder:
            self._forget_candidates(change.path, True)
            if self.roots.contains(Path(change.target)):
                catalog.rename_folder(conn, change.path, change.target)
            else:  # moved out of the library
                catalog.mark_missing_under(conn, change.path)
        else:
            self._forget_candidates(change.path, False)
            renamed = self._wanted(change.target) and catalog.rename(conn, self.faces, change.path, change.target)
            if not renamed:
                catalog.mark_missing(conn, [change.path])
                if self._wanted(change.target):  # e.g. "photo.jpg.part" renamed to "photo.jpg"
                    self.candidates[change.target] = Candidate(-1, -1, time.monotonic())

    def _forget_candidates(self, path: str, folder: bool) -> None:
        self.candidates.pop(path, None)
        if folder:
            low, high = catalog.under(path)
            for waiting in [p for p in self.candidates if low <= p < high]:
                del self.candidates[waiting]

    def _candidates_under(self, folder: str) -> None:
        """After a folder moved in: files of it that the index does not know yet (or that changed) wait too."""
        known = catalog.known_under(self.db, folder)
        for path, info in self.roots.scan(Path(folder)):
            if is_utf8_name(path) and catalog.needs_analysis(known.get(path), info):
                self.candidates.setdefault(path, Candidate(-1, -1, time.monotonic()))

    def _queue_stable(self) -> None:
        now, ready = time.monotonic(), {}
        for path, candidate in list(self.candidates.items()):
            try:
                info = os.stat(path, follow_symlinks=False)
            except OSError:  # gone again
                del self.candidates[path]
                continue
            if (info.st_size, info.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                self.candidates[path] = Candidate(info.st_size, info.st_mtime_ns, now)
            elif now - candidate.since >= STABLE_SECONDS:
                ready[path] = info
                del self.candidates[path]
        if ready:
            self._enqueue(ready)

    def _enqueue(self, found: dict[str, os.stat_result], root: Path | None = None) -> None:
        """Queue what is new or changed; unchanged files (a late event, a touch) are left alone, also when
        their analysis finished a moment ago (checked in the enqueue's own transaction)."""
        if jobs.enqueue(self.db, "watch", list(found), source=root, seen=found).queued:
            self.notify_queue()

    # -- the reconcile scan --------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Compare every root with the index: new and changed files are queued (at once when they have not
        changed for a while, else when stable), removed ones hidden, returned ones shown again."""
        started = time.monotonic()
        unavailable = []
        for root in self.roots.roots:
            if not self._reconcile_root(root):
                unavailable.append(str(root))
        self.state.unavailable = unavailable
        self.state.reconcile_seconds = round(time.monotonic() - started, 3)
        self.state.last_reconcile = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _reconcile_root(self, root: Path) -> bool:
        known = catalog.known_under(self.db, str(root))
        on_disk = {path: info for path, info in self.roots.scan(root) if is_utf8_name(path)}
        if not on_disk and any(not entry[3] for entry in known.values()):
            # An unplugged disk or an unmounted share looks like a library whose every photo was deleted:
            # hide nothing, and say so.
            log.warning("library root %s shows no photos but the index has some: left as it is", root)
            return False
        gone = [path for path, entry in known.items() if path not in on_disk and not entry[3]]
        back = [path for path, entry in known.items() if path in on_disk and entry[3]]
        if gone or back:
            with self.db.write() as conn:
                catalog.mark_missing(conn, gone)
                catalog.found_again(conn, back)
            for path in back:
                known[path] = (*known[path][:3], False)
        now_ns, ready = time.time_ns(), {}
        for path, info in on_disk.items():
            if catalog.needs_analysis(known.get(path), info):
                if now_ns - info.st_mtime_ns >= STABLE_SECONDS * 1e9:
                    ready[path] = info
                else:
                    self.candidates.setdefault(path, Candidate(info.st_size, info.st_mtime_ns, time.monotonic()))
        if ready:
            self._enqueue(ready, root)
        return True

    def status(self) -> dict:
        state = self.state
        return {
            "mode": state.mode,
            "problem": state.problem,
            "last_reconcile": state.last_reconcile,
            "reconcile_seconds": state.reconcile_seconds,
            "waiting_to_settle": state.waiting,
            "unavailable_roots": state.unavailable,
        }
