"""Numbered schema migrations; each is recorded in the same transaction that applies it."""

from __future__ import annotations

NOW = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        f"""
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            size INTEGER,
            mtime_ns INTEGER,
            content_hash TEXT,
            width INTEGER,
            height INTEGER,
            taken_at TEXT,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
            error TEXT,
            added_at TEXT NOT NULL DEFAULT {NOW},
            analysed_at TEXT
        );
        CREATE INDEX images_by_hash ON images (content_hash);
        -- Covers the library listing (path order, filtered by status) without touching the table.
        CREATE INDEX images_listing ON images (path, status);

        CREATE TABLE albums (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT,
            created_at TEXT NOT NULL DEFAULT {NOW}
        );
        CREATE TABLE album_images (
            album_id INTEGER NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            -- Stored in album order, so listing an album needs no sort.
            PRIMARY KEY (album_id, position),
            UNIQUE (album_id, image_id)
        ) WITHOUT ROWID;
        CREATE INDEX album_images_by_image ON album_images (image_id);

        CREATE TABLE objects (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL
        );
        CREATE INDEX objects_by_image ON objects (image_id);

        CREATE TABLE faces (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            score REAL NOT NULL,
            x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
            keypoints TEXT NOT NULL,
            cluster_id INTEGER
        );
        CREATE INDEX faces_by_image ON faces (image_id);

        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('images', 'folder')),
            source TEXT,
            created_at TEXT NOT NULL DEFAULT {NOW}
        );
        -- One row per file to analyse: the durable queue. 'queued' rows are the work left.
        CREATE TABLE job_items (
            id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'failed')),
            error TEXT,
            finished_at TEXT
        );
        CREATE INDEX job_items_by_job ON job_items (job_id, state);
        CREATE INDEX job_items_queued ON job_items (id) WHERE state = 'queued';
        """,
    ),
    (
        "0002_people",
        """
        -- One row per face cluster ever made: AUTOINCREMENT never reuses an id, so clients may keep them.
        CREATE TABLE people (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT
        );
        CREATE INDEX faces_by_cluster ON faces (cluster_id);
        """,
    ),
]


def applied(conn) -> list[str]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def migrate(conn) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied now."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT {NOW})"
    )
    done = set(applied(conn))
    newly = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        # executescript commits first, so the transaction is opened inside the script itself.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations (name) VALUES ('{name}');\nCOMMIT;"
            )
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        newly.append(name)
    return newly
