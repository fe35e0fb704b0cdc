"""Albums: named, ordered lists of indexed images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .catalog import LISTED
from .db import Database
from .errors import ApiError, bad_request, not_found


def _album_id(conn, name: str) -> int:
    row = conn.execute("SELECT id FROM albums WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise not_found(f"There is no album named '{name}'.")
    return row["id"]


def create(db: Database, name: str, description: str | None) -> None:
    try:
        with db.write() as conn:
            conn.execute("INSERT INTO albums (name, description) VALUES (?, ?)", (name, description))
    except db.errors.IntegrityError:
        raise ApiError(409, f"An album named '{name}' already exists.") from None


def delete(db: Database, name: str) -> None:
    with db.write() as conn:
        conn.execute("DELETE FROM albums WHERE id = ?", (_album_id(conn, name),))


def add_images(db: Database, name: str, paths: Sequence[Path]) -> int:
    """Append the images in order; all must be indexed or nothing is added. Returns how many were new."""
    with db.write() as conn:
        album_id = _album_id(conn, name)
        ids = {}
        for path in paths:
            row = conn.execute(f"SELECT id FROM images WHERE path = ? AND {LISTED}", (str(path),)).fetchone()
            if row:
                ids[path] = row["id"]
        missing = [str(path) for path in paths if path not in ids]
        if missing:
            raise bad_request("These paths are not indexed images: " + ", ".join(missing) + ".")
        (position,) = conn.execute(
            "SELECT coalesce(max(position), 0) FROM album_images WHERE album_id = ?", (album_id,)
        ).fetchone()
        added = 0
        for path in paths:
            position += 1
            cursor = conn.execute(
                "INSERT INTO album_images (album_id, image_id, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (album_id, ids[path], position),
            )
            added += cursor.rowcount
        return added


def remove_image(db: Database, name: str, path: Path) -> None:
    with db.write() as conn:
        album_id = _album_id(conn, name)
        cursor = conn.execute(
            "DELETE FROM album_images WHERE album_id = ? AND image_id = (SELECT id FROM images WHERE path = ?)",
            (album_id, str(path)),
        )
        if cursor.rowcount == 0:
            raise not_found(f"{path} is not in the album '{name}'.")


def set_description(db: Database, name: str, description: str) -> None:
    with db.write() as conn:
        conn.execute("UPDATE albums SET description = ? WHERE id = ?", (description, _album_id(conn, name)))


def view(db: Database, name: str) -> dict:
    with db.snapshot() as conn:
        album = conn.execute("SELECT id, name, description FROM albums WHERE name = ?", (name,)).fetchone()
        if album is None:
            raise not_found(f"There is no album named '{name}'.")
        photos = conn.execute(
            "SELECT images.path FROM album_images JOIN images ON images.id = album_images.image_id"
            " WHERE album_id = ? AND images.missing_since IS NULL ORDER BY position",
            (album["id"],),
        ).fetchall()
    return {"album_name": album["name"], "description": album["description"], "photos": [r[0] for r in photos]}


def view_all(db: Database) -> list[dict]:
    with db.snapshot() as conn:
        albums = {
            row["id"]: {
                "album_name": row["name"],
                "description": row["description"],
                "image_paths": [],
                "created_at": row["created_at"],
            }
            for row in conn.execute("SELECT id, name, description, created_at FROM albums ORDER BY name")
        }
        members = conn.cursor()
        members.row_factory = None  # plain tuples: this can be every photo of every album
        members.execute(
            "SELECT album_id, images.path FROM album_images JOIN images ON images.id = album_images.image_id"
            " WHERE images.missing_since IS NULL ORDER BY album_id, position"
        )
        for album_id, path in members:
            albums[album_id]["image_paths"].append(path)
    return list(albums.values())
