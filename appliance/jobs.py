"""The durable ingest queue: a job is one request; its items, one per file, are the queue rows.

This module owns an item's whole life in the database: queued -> running (claimed, one more attempt, committed
before the analysis starts) -> done or failed (in the transaction that stores the result). Nothing about the
queue is kept in memory, so pruning, restarts and crashes cannot make it lose its place.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .db import Database
from .errors import not_found
from .migrations import NOW
from .paths import stat_or_none

# An item whose analysis was started this many times without finishing (the process died each time: out of
# memory, a crashing decoder) is failed at the next start instead of being handed out again.
MAX_ATTEMPTS = 3
CRASHED = (
    f"analysis crashed {MAX_ATTEMPTS} times: the appliance stopped while analysing this file each time; it is not"
    " tried again until the file changes."
)
PENDING = "state IN ('queued', 'running')"
CLIENT_KINDS = ("images", "folder")  # jobs a client asked for, as opposed to the watcher's and re-analyses


@dataclass
class QueuedItem:
    id: int
    job_id: str
    path: str
    attempts: int  # including this one


@dataclass
class Enqueued:
    job_id: str | None  # None when nothing was queued and nothing skipped
    queued: int
    skipped: int


def enqueue(
    db: Database,
    kind: str,
    paths: Sequence[Path | str],
    source: Path | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    seen: Mapping[str, os.stat_result] | None = None,
) -> Enqueued:
    """Record the job, an item and a pending image row per path not already waiting or running, and a failed
    item per skipped (path, reason), all in one transaction. A client's job (images, folder) takes over the
    entries the background (the watcher, a re-analysis) queued for the same paths, so its answer and its
    progress count them. `seen`: the stat of each path when it was found on disk; a path the index already
    holds at that size and mtime (analysed meanwhile, say) is not queued again."""
    job_id = uuid.uuid4().hex
    rows = [(job_id, str(path)) for path in paths]
    seen = seen or {}

    def item(job: str, path: str) -> dict:
        info = seen.get(path)
        return {"job": job, "path": path, "size": info and info.st_size, "mtime": info and info.st_mtime_ns}

    with db.write() as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, source) VALUES (?, ?, ?)", (job_id, kind, str(source) if source else None)
        )
        conn.executemany("INSERT INTO images (path) VALUES (?) ON CONFLICT (path) DO NOTHING", [r[1:] for r in rows])
        taken_over = 0
        if kind in CLIENT_KINDS:
            taken_over = conn.executemany(
                f"UPDATE job_items SET job_id = ? WHERE path = ? AND {PENDING}"
                " AND job_id IN (SELECT id FROM jobs WHERE kind IN ('watch', 'reanalysis'))",
                rows,
            ).rowcount
        # OR IGNORE: the unique index on waiting and running paths keeps one queue entry per path.
        queued = taken_over + conn.executemany(QUEUE_UNLESS_UNCHANGED, [item(job, path) for job, path in rows]).rowcount
        conn.executemany(
            f"INSERT INTO job_items (job_id, path, state, error, finished_at) VALUES (?, ?, 'failed', ?, {NOW})",
            [(job_id, path, reason) for path, reason in skipped],
        )
        if not queued and not skipped:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return Enqueued(None, 0, 0)
    return Enqueued(job_id, queued, len(skipped))


QUEUE_UNLESS_UNCHANGED = (
    "INSERT OR IGNORE INTO job_items (job_id, path) SELECT :job, :path WHERE NOT EXISTS (SELECT 1 FROM images"
    " WHERE path = :path AND status != 'pending' AND missing_since IS NULL AND size = :size AND mtime_ns = :mtime)"
)


def claim(db: Database) -> QueuedItem | None:
    """Take the oldest queued item: mark it running with one more attempt, committed before it is analysed."""
    with db.write(durable=False) as conn:
        row = conn.execute(
            f"UPDATE job_items SET state = 'running', attempts = attempts + 1, started_at = {NOW}"
            " WHERE id = (SELECT id FROM job_items WHERE state = 'queued' ORDER BY id LIMIT 1)"
            " RETURNING id, job_id, path, attempts"
        ).fetchone()
    return QueuedItem(*row) if row else None


def release(db: Database, item_id: int) -> None:
    """Put a claimed item back, not counting the attempt: it was interrupted (stop, full disk), not a crash."""
    with db.write(durable=False) as conn:
        conn.execute(
            "UPDATE job_items SET state = 'queued', attempts = max(attempts - 1, 0) WHERE id = ? AND state = 'running'",
            (item_id,),
        )


def recover(db: Database) -> int:
    """Before any analysis starts: items left running were cut short by a crash. Fail those that crashed
    MAX_ATTEMPTS times (and their images), queue the others again. Returns how many failed."""
    with db.write() as conn:
        crashed = [
            row[0]
            for row in conn.execute(
                f"UPDATE job_items SET state = 'failed', error = ?, finished_at = {NOW}"
                " WHERE state = 'running' AND attempts >= ? RETURNING path",
                (CRASHED, MAX_ATTEMPTS),
            )
        ]
        # With its size and mtime, so that add-folder and the scan leave it alone until the file changes.
        conn.executemany(
            "UPDATE images SET status = 'failed', error = ?, size = ?, mtime_ns = ?"
            " WHERE path = ? AND status != 'done'",
            [
                (CRASHED, info and info.st_size, info and info.st_mtime_ns, path)
                for path in crashed
                for info in [stat_or_none(path)]
            ],
        )
        conn.execute("UPDATE job_items SET state = 'queued' WHERE state = 'running'")
    return len(crashed)


def finish_item(conn, item_id: int, error: str | None = None) -> None:
    """Mark a running item done (or failed with its reason), inside the caller's transaction."""
    conn.execute(
        f"UPDATE job_items SET state = ?, error = ?, finished_at = {NOW} WHERE id = ? AND state = 'running'",
        ("failed" if error else "done", error, item_id),
    )


def cancel_for_path(conn, path: str, reason: str) -> None:
    conn.execute(
        f"UPDATE job_items SET state = 'failed', error = ?, finished_at = {NOW} WHERE path = ? AND {PENDING}",
        (reason, path),
    )


def is_idle(db: Database) -> bool:
    return db.read().execute(f"SELECT 1 FROM job_items WHERE {PENDING} LIMIT 1").fetchone() is None


def progress(db: Database, job_id: str, max_failures: int = 100) -> dict:
    with db.snapshot() as conn:
        job = conn.execute("SELECT id, kind, source, created_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if job is None:
            raise not_found(f"There is no job {job_id} (finished jobs are forgotten after keep_jobs_days).")
        counts = dict(conn.execute("SELECT state, count(*) FROM job_items WHERE job_id = ? GROUP BY state", (job_id,)))
        failures = conn.execute(
            "SELECT path, error FROM job_items WHERE job_id = ? AND state = 'failed' ORDER BY id LIMIT ?",
            (job_id, max_failures),
        ).fetchall()
    queued, running, done, failed = (counts.get(state, 0) for state in ("queued", "running", "done", "failed"))
    total = queued + running + done + failed
    return {
        "job_id": job["id"],
        "kind": job["kind"],
        "source": job["source"],
        "created_at": job["created_at"],
        "total": total,
        "queued": queued,
        "running": running,
        "done": done,
        "failed": failed,
        "progress": 1.0 if total == 0 else (done + failed) / total,
        "finished": queued + running == 0,
        "failures": [{"path": row["path"], "error": row["error"]} for row in failures],
    }


def queue_counts(db: Database) -> dict[str, int]:
    counts = dict(db.read().execute("SELECT state, count(*) FROM job_items GROUP BY state"))
    return {state: counts.get(state, 0) for state in ("queued", "running", "done", "failed")}


def prune(db: Database, keep_days: int) -> int:
    """Forget finished jobs older than `keep_days` (their items go with them); returns how many."""
    with db.write(durable=False) as conn:
        return conn.execute(
            "DELETE FROM jobs WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)"
            f" AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_id = jobs.id AND {PENDING})",
            (f"-{keep_days} days",),
        ).rowcount
