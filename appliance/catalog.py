"""The image index: what is indexed, what was found in it, and removing an image from it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import jobs
from .db import Database
from .errors import not_found
from .faces import FaceIndex

# Failed files stay in the table (with their reason) but are not part of the library.
LISTED = "status != 'failed'"


def all_paths(db: Database, offset: int = 0, limit: int | None = None) -> tuple[list[str], int | None]:
    """Paths in path order; the total is counted only when a page was asked for."""
    if limit is None and offset == 0:
        cursor = db.read().cursor()
        cursor.row_factory = None  # plain tuples: twice as fast for a 20,000-row list
        return [row[0] for row in cursor.execute(f"SELECT path FROM images WHERE {LISTED} ORDER BY path")], None
    with db.snapshot() as conn:
        (total,) = conn.execute(f"SELECT count(*) FROM images WHERE {LISTED}").fetchone()
        rows = conn.execute(
            f"SELECT path FROM images WHERE {LISTED} ORDER BY path LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        ).fetchall()
    return [row[0] for row in rows], total


def image_row(conn, path: Path):
    row = conn.execute("SELECT * FROM images WHERE path = ?", (str(path),)).fetchone()
    if row is None:
        raise not_found(f"{path} is not an indexed image.")
    return row


def delete(db: Database, faces: FaceIndex, path: Path) -> None:
    """Forget the image, its objects, faces and album places; the file on disk is never touched."""
    with db.write() as conn:
        row = image_row(conn, path)
        faces.remove_image(conn, row["id"])
        conn.execute("DELETE FROM images WHERE id = ?", (row["id"],))
        jobs.cancel_for_path(conn, str(path), "The image was removed from the index.")


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


def classes_by_image(db: Database) -> dict[str, list[str]]:
    """Every analysed image with its sorted class names (empty when nothing was found)."""
    with db.snapshot() as conn:
        result = {row[0]: [] for row in conn.execute("SELECT path FROM images WHERE status = 'done' ORDER BY path")}
        for path, label in conn.execute(
            "SELECT DISTINCT images.path, objects.label FROM objects JOIN images ON images.id = objects.image_id"
            " WHERE images.status = 'done' ORDER BY images.path, objects.label"
        ):
            result[path].append(label)
    return result


def status_counts(db: Database) -> dict[str, int]:
    counts = dict(db.read().execute("SELECT status, count(*) FROM images GROUP BY status"))
    return {status: counts.get(status, 0) for status in ("pending", "done", "failed")}


def new_or_changed(db: Database, folder: Path, paths: Iterable[Path]) -> list[Path]:
    """The paths not already analysed, or failed, with the same size and mtime (a stat, no read)."""
    prefix = str(folder).rstrip("/") + "/"
    # Every path under the folder sorts between "folder/" and "folder0" ("0" follows "/").
    known = {
        row[0]: (row[1], row[2])
        for row in db.read().execute(
            "SELECT path, size, mtime_ns FROM images WHERE status != 'pending' AND path >= ? AND path < ?",
            (prefix, prefix[:-1] + "0"),
        )
    }
    changed = []
    for path in paths:
        seen = known.get(str(path))
        if seen is not None:
            try:
                stat = path.stat()
            except OSError:  # gone since the scan: nothing to queue
                continue
            if seen == (stat.st_size, stat.st_mtime_ns):
                continue
        changed.append(path)
    return changed
