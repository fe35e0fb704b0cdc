"""Analyses kept up to date: when the models, or the settings that shape what is stored, change, every image
analysed otherwise is queued again (one durable job, newest photos first) while its old results are served.

A producer like add-folder: it only puts rows into the queue. An image's fingerprint says what analysed it.
"""

from __future__ import annotations

import logging

from . import jobs
from .db import Database

log = logging.getLogger(__name__)


def queue_stale(db: Database, fingerprint: str) -> jobs.Enqueued | None:
    """At start: queue every analysed image whose fingerprint is not the current one (those already waiting
    are not queued twice). Images analysed before fingerprints were kept are taken as current."""
    with db.write() as conn:
        conn.execute("UPDATE images SET fingerprint = ? WHERE fingerprint IS NULL AND status = 'done'", (fingerprint,))
    stale = [
        row[0]
        for row in db.read().execute(
            "SELECT path FROM images WHERE status = 'done' AND fingerprint != ? AND missing_since IS NULL"
            " ORDER BY coalesce(taken_at, '') DESC, mtime_ns DESC",
            (fingerprint,),
        )
    ]
    if not stale:
        return None
    enqueued = jobs.enqueue(db, "reanalysis", stale)
    if enqueued.queued:
        log.warning("the analysis changed (models or thresholds): %d images are analysed again", enqueued.queued)
    return enqueued


def progress(db: Database) -> dict | None:
    """The unfinished re-analysis job, for /health."""
    row = (
        db.read()
        .execute(
            "SELECT jobs.id FROM jobs JOIN job_items ON job_items.job_id = jobs.id"
            f" WHERE jobs.kind = 'reanalysis' AND job_items.{jobs.PENDING} LIMIT 1"
        )
        .fetchone()
    )
    if row is None:
        return None
    job = jobs.progress(db, row[0], max_failures=0)
    return {key: job[key] for key in ("job_id", "total", "done", "failed", "progress")}


def drop_old_vectors(db: Database, current_table: str) -> list[str]:
    """Once no re-analysis is pending, the vector tables of embedders no longer used go (vec0 drops its shadow
    tables with them). Returns their names."""
    if progress(db) is not None:
        return []
    old = [
        row[0]
        for row in db.read().execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
            " AND (name GLOB 'face_vectors_[0-9]*' OR name GLOB 'face_embeddings_[0-9]*') AND name != ?",
            (current_table,),
        )
    ]
    for name in old:
        with db.write() as conn:
            conn.execute(f"DROP TABLE {name}")
        log.info("dropped %s: every image is analysed with the current embedder", name)
    return old
