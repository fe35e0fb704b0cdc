"""The image index: what is indexed, what was found in it, and removing an image from it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from . import jobs
from .bodies import joined
from .chunks import ChunkedListing
from .db import Database
from .errors import not_found
from .migrations import NOW

if TYPE_CHECKING:
    from .faces import FaceIndex

# Failed files stay in the table (with their reason) but are not part of the library; files gone from disk
# are hidden at once and forgotten after a grace period (a move may still claim them).
LISTED = "status != 'failed' AND missing_since IS NULL"
# Analysed and on disk: what the object and face answers are made of.
ANALYSED = "images.status = 'done' AND images.missing_since IS NULL"


class ImageListings:
    """all-images and all-image-objects of one appliance, each kept in chunks between requests."""

    def __init__(self):
        self.paths = ChunkedListing(
            "json_group_array(path)", "images INDEXED BY images_listed", LISTED, b'{"images":[', b"]}"
        )
        self.classes = ChunkedListing(
            "json_group_object(path, json(coalesce(classes, '[]')))",
            "images INDEXED BY images_analysed",
            ANALYSED,
            b'{"data":{',
            b"}}",
        )


def all_paths_json(db: Database, listings: ImageListings, offset: int = 0, limit: int | None = None) -> bytes:
    """The all-images body, built by SQLite: paths in path order; the total only when a page was asked for."""
    conn = db.read()
    if limit is None and offset == 0:
        with db.snapshot():
            return listings.paths.body(conn)
    with db.snapshot():
        (paths,) = conn.execute(
            "SELECT CAST(json_group_array(path) AS BLOB)"
            f" FROM (SELECT path FROM images WHERE {LISTED} ORDER BY path LIMIT ? OFFSET ?)",
            (-1 if limit is None else limit, offset),
        ).fetchone()
        (total,) = conn.execute(f"SELECT count(*) FROM images WHERE {LISTED}").fetchone()
    return joined(b'{"images":', [paths], b',"total":' + str(total).encode() + b"}")


def image_row(conn, path: Path):
    row = conn.execute("SELECT * FROM images WHERE path = ?", (str(path),)).fetchone()
    if row is None:
        raise not_found(f"{path} is not an indexed image.")
    if row["missing_since"] is not None:
        raise gone_from_disk(path)
    return row


def gone_from_disk(path: Path | str):
    return not_found(f"{path} is no longer on disk; it leaves the index unless it turns up elsewhere.")


def delete(db: Database, faces: FaceIndex, path: Path) -> list[str]:
    """Forget the image, its objects, faces and album places; the file on disk is never touched. Returns the
    content hash when no other image shows it (its thumbnail can go)."""
    with db.write() as conn:
        row = conn.execute("SELECT id, content_hash FROM images WHERE path = ?", (str(path),)).fetchone()
        if row is None:
            raise not_found(f"{path} is not an indexed image.")
        faces.remove_image(conn, row["id"])
        conn.execute("DELETE FROM images WHERE id = ?", (row["id"],))
        jobs.cancel_for_path(conn, str(path), "The image was removed from the index.")
        return unused_hashes(conn, [row["content_hash"]])


def objects_of(db: Database, path: Path) -> dict:
    with db.snapshot() as conn:
        image = image_row(conn, path)
        rows = conn.execute(
            "SELECT label, score, x1, y1, x2, y2 FROM objects WHERE image_id = ? ORDER BY score DESC",
            (image["id"],),
        ).fetchall()
    objects = [{"label": r["label"], "score": r["score"], "box": [r["x1"], r["y1"], r["x2"], r["y2"]]} for r in rows]
    return {
        "classes": sorted({o["label"] for o in objects}),
        "objects": objects,
        "status": image["status"],
        "error": image["error"],
    }


def classes_by_image_json(db: Database, listings: ImageListings) -> bytes:
    """The all-image-objects body, built by SQLite: every analysed image in path order, with its class names
    sorted (kept in images.classes by migration 0007's triggers)."""
    with db.snapshot() as conn:
        return listings.classes.body(conn)


def status_counts(db: Database) -> dict[str, int]:
    counts = dict(db.read().execute("SELECT status, count(*) FROM images GROUP BY status"))
    return {status: counts.get(status, 0) for status in ("pending", "done", "failed")}


def new_or_changed(db: Database, folder: Path, found: Iterable[tuple[str, os.stat_result]]) -> list[str]:
    """The paths not already analysed (or failed) with the same size and mtime: a stat, no read."""
    known = known_under(db, str(folder))
    return [path for path, info in found if needs_analysis(known.get(path), info)]


def needs_analysis(known: tuple | None, info: os.stat_result) -> bool:
    """Whether a file seen on disk must be queued, given its index entry (size, mtime_ns, status, missing)."""
    if known is None:
        return True
    size, mtime_ns, status, missing = known
    return status == "pending" or missing or (size, mtime_ns) != (info.st_size, info.st_mtime_ns)


# -- following the disk ------------------------------------------------------------------------------------


def under(folder: str) -> tuple[str, str]:
    """Bounds of every path below `folder`: they sort between "folder/" and "folder0" ("0" follows "/")."""
    prefix = folder.rstrip("/") + "/"
    return prefix, prefix[:-1] + "0"


def known_under(db: Database, folder: str) -> dict[str, tuple]:
    """path -> (size, mtime_ns, status, missing) of every indexed path below `folder`, in one query."""
    cursor = db.read().cursor()
    cursor.row_factory = None
    return {
        path: (size, mtime_ns, status, missing is not None)
        for path, size, mtime_ns, status, missing in cursor.execute(
            "SELECT path, size, mtime_ns, status, missing_since FROM images WHERE path >= ? AND path < ?",
            under(folder),
        )
    }


def mark_missing(conn, paths: Iterable[str]) -> int:
    """Files gone from disk: hidden now, their queue entries cancelled; forgotten after the grace period."""
    rows = [(path,) for path in paths]
    changed = conn.executemany(
        f"UPDATE images SET missing_since = {NOW} WHERE path = ? AND missing_since IS NULL", rows
    ).rowcount
    conn.executemany(
        f"UPDATE job_items SET state = 'failed', error = 'The file is no longer on disk.', finished_at = {NOW}"
        " WHERE path = ? AND state = 'queued'",
        rows,
    )
    return changed


def mark_missing_under(conn, folder: str) -> list[str]:
    paths = [row[0] for row in conn.execute("SELECT path FROM images WHERE path >= ? AND path < ?", under(folder))]
    mark_missing(conn, paths)
    return paths


def found_again(conn, paths: Iterable[str]) -> None:
    conn.executemany("UPDATE images SET missing_since = NULL WHERE path = ?", [(path,) for path in paths])


def rename(conn, faces: FaceIndex, source: str, target: str) -> bool:
    """A file moved within the library: the image keeps its id, analysis, people and albums. A file that was
    at `target` before was overwritten, so its own row goes. Returns whether `source` was indexed."""
    if conn.execute("SELECT 1 FROM images WHERE path = ?", (source,)).fetchone() is None:
        return False
    overwritten = conn.execute("SELECT id FROM images WHERE path = ?", (target,)).fetchone()
    if overwritten is not None:
        faces.remove_image(conn, overwritten[0])
        conn.execute("DELETE FROM images WHERE id = ?", (overwritten[0],))
    conn.execute("UPDATE images SET path = ?, missing_since = NULL WHERE path = ?", (target, source))
    move_queue_entries(conn, [(source, target)])
    return True


def rename_folder(conn, source: str, target: str) -> int:
    """A folder moved within the library: every image below keeps everything. Returns how many moved."""
    (src_low, src_high), (dst_low, _) = under(source), under(target)
    moves = [
        (path, dst_low + path[len(src_low) :])
        for (path,) in conn.execute("SELECT path FROM images WHERE path >= ? AND path < ?", (src_low, src_high))
    ]
    conn.executemany(
        "UPDATE OR IGNORE images SET path = ?, missing_since = NULL WHERE path = ?", [(new, old) for old, new in moves]
    )
    move_queue_entries(conn, moves)
    mark_missing_under(conn, source)  # whatever could not move (a clash at the target) is gone from here
    return len(moves)


def move_queue_entries(conn, moves: list[tuple[str, str]]) -> None:
    """Queued entries follow their file; one already running finds its image under the new path."""
    conn.executemany(
        "UPDATE OR IGNORE job_items SET path = ? WHERE path = ? AND state = 'queued'",
        [(new, old) for old, new in moves],
    )


def unused_hashes(conn, digests: Iterable[str | None]) -> list[str]:
    """The content hashes no image row uses any more (their thumbnails can go)."""
    return [
        digest
        for digest in set(digests)
        if digest and conn.execute("SELECT 1 FROM images WHERE content_hash = ? LIMIT 1", (digest,)).fetchone() is None
    ]


def purge_missing(db: Database, faces: FaceIndex, grace_seconds: int, batch: int = 500) -> list[str]:
    """Forget images gone from disk for longer than the grace period (objects, faces and album places go with
    them). Returns the content hashes no longer used by any image."""
    due = (
        "SELECT id, content_hash FROM images WHERE missing_since IS NOT NULL"
        " AND missing_since < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) LIMIT ?"
    )
    if db.read().execute(due, (f"-{grace_seconds} seconds", 1)).fetchone() is None:
        return []  # the usual case, checked without a write (a write empties the listing caches)
    with db.write() as conn:
        rows = conn.execute(due, (f"-{grace_seconds} seconds", batch)).fetchall()
        for image_id, _ in rows:
            faces.remove_image(conn, image_id)
        conn.executemany("DELETE FROM images WHERE id = ?", [(row[0],) for row in rows])
        return unused_hashes(conn, (row[1] for row in rows))
