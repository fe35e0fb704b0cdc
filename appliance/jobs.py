"""The durable ingest queue: a job is one request; its items, one per file, are the queue rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .db import Database
from .errors import not_found
from .migrations import NOW


@dataclass
class QueuedItem:
    id: int
    job_id: str
    path: str


def enqueue(db: Database, kind: str, paths: Sequence[Path], source: Path | None = None) -> str:
    """Record the job, its items and a pending image row per new path, all in one transaction."""
    job_id = uuid.uuid4().hex
    rows = [(str(path),) for path in paths]
    with db.write() as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, source) VALUES (?, ?, ?)",
            (job_id, kind, str(source) if source else None),
        )
        conn.executemany("INSERT INTO images (path) VALUES (?) ON CONFLICT (path) DO NOTHING", rows)
        conn.executemany("INSERT INTO job_items (job_id, path) VALUES (?, ?)", [(job_id, p) for (p,) in rows])
    return job_id


def queued_after(db: Database, last_id: int, limit: int) -> list[QueuedItem]:
    """The next queued items in queue order; ids only grow, so `last_id` marks what was handed out."""
    rows = (
        db.read()
        .execute(
            "SELECT id, job_id, path FROM job_items WHERE state = 'queued' AND id > ? ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        .fetchall()
    )
    return [QueuedItem(*row) for row in rows]


def finish_item(conn, item_id: int, error: str | None = None) -> None:
    """Mark an item done (or failed with its reason), inside the caller's transaction."""
    conn.execute(
        f"UPDATE job_items SET state = ?, error = ?, finished_at = {NOW} WHERE id = ? AND state = 'queued'",
        ("failed" if error else "done", error, item_id),
    )


def cancel_for_path(conn, path: str, reason: str) -> None:
    conn.execute(
        f"UPDATE job_items SET state = 'failed', error = ?, finished_at = {NOW} WHERE path = ? AND state = 'queued'",
        (reason, path),
    )


def progress(db: Database, job_id: str, max_failures: int = 100) -> dict:
    with db.snapshot() as conn:
        job = conn.execute("SELECT id, kind, source, created_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if job is None:
            raise not_found(f"No job with id {job_id}.")
        counts = dict(conn.execute("SELECT state, count(*) FROM job_items WHERE job_id = ? GROUP BY state", (job_id,)))
        failures = conn.execute(
            "SELECT path, error FROM job_items WHERE job_id = ? AND state = 'failed' ORDER BY id LIMIT ?",
            (job_id, max_failures),
        ).fetchall()
    queued, done, failed = (counts.get(state, 0) for state in ("queued", "done", "failed"))
    total = queued + done + failed
    return {
        "job_id": job["id"],
        "kind": job["kind"],
        "source": job["source"],
        "created_at": job["created_at"],
        "total": total,
        "queued": queued,
        "done": done,
        "failed": failed,
        "progress": 1.0 if total == 0 else (done + failed) / total,
        "finished": queued == 0,
        "failures": [{"path": row["path"], "error": row["error"]} for row in failures],
    }


def queue_counts(db: Database) -> dict[str, int]:
    counts = dict(db.read().execute("SELECT state, count(*) FROM job_items GROUP BY state"))
    return {state: counts.get(state, 0) for state in ("queued", "done", "failed")}


def prune(db: Database, keep_days: int) -> int:
    """Forget finished jobs older than `keep_days` (their items go with them); returns how many."""
    with db.write(durable=False) as conn:
        return conn.execute(
            "DELETE FROM jobs WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)"
            " AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_id = jobs.id AND state = 'queued')",
            (f"-{keep_days} days",),
        ).rowcount
