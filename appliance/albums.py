"""Albums: named, ordered lists of indexed images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .bodies import joined
from .catalog import LISTED
from .db import Database
from .errors import ApiError, bad_request, not_found

if TYPE_CHECKING:
    from .api.routing import ResponseCache


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


# An album's photos (in album order, those still on disk) as a JSON array, for a row of `albums`: the album's
# rows are stored in album order, with the paths to show in them (migration 0007).
PHOTOS = (
    "(SELECT json_group_array(shown_path) FROM (SELECT shown_path FROM album_images"
    " WHERE album_id = albums.id AND shown_path IS NOT NULL ORDER BY position))"
)


def view_json(db: Database, name: str) -> bytes:
    """The view-album body, built by SQLite."""
    query = (
        "SELECT CAST('{\"album_name\":' || json_quote(name) || ',\"description\":' || json_quote(description)"
        f" || ',\"photos\":' || {PHOTOS} || '}}' AS BLOB) FROM albums WHERE name = ?"
    )
    row = db.read().execute(query, (name,)).fetchone()
    if row is None:
        raise not_found(f"There is no album named '{name}'.")
    return row[0]


def albums_json(conn, album_ids: list[int]) -> dict[int, bytes]:
    """These albums' parts of the view-all body, built by SQLite in one query."""
    rows = conn.execute(
        "SELECT id, CAST('{\"album_name\":' || json_quote(name) || ',\"description\":' || json_quote(description)"
        f" || ',\"image_paths\":' || {PHOTOS} || ',\"created_at\":' || json_quote(created_at) || '}}' AS BLOB)"
        " FROM albums WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(album_ids),),
    )
    return dict(rows.fetchall())


def view_all_json(db: Database, parts: ResponseCache) -> bytes:
    """The view-all body: each album's part is kept by the album's version, so a change to one album (or to a
    photo in it) renders that album again, not all of them."""
    with db.snapshot() as conn:
        albums = conn.execute("SELECT id, version FROM albums ORDER BY name").fetchall()
        kept = {album_id: parts.get(f"album {album_id}", (version,)) for album_id, version in albums}
        missing = [album_id for album_id, part in kept.items() if part is None]
        if missing:
            versions = dict(albums)
            for album_id, part in albums_json(conn, missing).items():
                kept[album_id] = parts.put(f"album {album_id}", (versions[album_id],), part)
    return joined(b'{"albums":[', [kept[album_id] for album_id, _ in albums], b"]}")
