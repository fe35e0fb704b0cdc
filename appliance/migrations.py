"""Numbered schema migrations; each is recorded in the same transaction that applies it."""

from __future__ import annotations

from .errors import StartupError

NOW = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
# Migration 0007's columns, as its triggers compute them for one image. Frozen with it: a change is a new migration.
SHOWN_PATH = "(SELECT path FROM images WHERE id = {image} AND missing_since IS NULL)"
CLASSES = (
    "(SELECT json_group_array(label) FROM (SELECT DISTINCT label FROM objects WHERE image_id = {image} ORDER BY label))"
)
CLASSES_BUT = CLASSES.replace("{image}", "{image} AND id != new.id")  # without the object new.id replaces

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
    (
        "0003_claimed_queue",
        f"""
        -- The queue's whole state lives here: an item is claimed ('running', one more attempt) in a committed
        -- write before its analysis starts, so a crash leaves a visible trace. AUTOINCREMENT: ids never repeat.
        CREATE TABLE job_items_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at TEXT,
            finished_at TEXT
        );
        INSERT INTO job_items_new (id, job_id, path, state, error, finished_at)
            SELECT id, job_id, path, state, error, finished_at FROM job_items;
        -- Older versions could queue a path twice; the first entry does the work.
        UPDATE job_items_new SET state = 'done', finished_at = {NOW}
            WHERE state = 'queued'
            AND id NOT IN (SELECT min(id) FROM job_items_new WHERE state = 'queued' GROUP BY path);
        DROP TABLE job_items;
        ALTER TABLE job_items_new RENAME TO job_items;
        CREATE INDEX job_items_by_job ON job_items (job_id, state);
        CREATE INDEX job_items_queued ON job_items (id) WHERE state = 'queued';
        -- One queue entry per path while it waits or runs.
        CREATE UNIQUE INDEX job_items_pending_path ON job_items (path) WHERE state IN ('queued', 'running');

        -- Counters that must survive a restart (faces added or removed since the last re-clustering).
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO counters VALUES ('faces_changed', 0);
        """,
    ),
    (
        "0004_library_follows_the_disk",
        f"""
        -- Set when the file is gone from disk: the image is hidden at once, and forgotten after a grace period
        -- unless its content turns up at another path (a move), which then keeps everything.
        ALTER TABLE images ADD COLUMN missing_since TEXT;
        CREATE INDEX images_missing ON images (missing_since) WHERE missing_since IS NOT NULL;
        -- What analysed it (models, their checksums, the thresholds that change results).
        ALTER TABLE images ADD COLUMN fingerprint TEXT;
        -- Covers the library listing (path order) for exactly the rows it shows.
        DROP INDEX images_listing;
        CREATE INDEX images_listed ON images (path) WHERE status != 'failed' AND missing_since IS NULL;

        -- New job kinds (files the watcher found, re-analysis after a model change): a CHECK constraint
        -- cannot be altered, so the table is rebuilt (foreign keys are off for this migration).
        CREATE TABLE jobs_new (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('images', 'folder', 'watch', 'reanalysis')),
            source TEXT,
            created_at TEXT NOT NULL DEFAULT {NOW}
        );
        INSERT INTO jobs_new SELECT id, kind, source, created_at FROM jobs;
        DROP TABLE jobs;
        ALTER TABLE jobs_new RENAME TO jobs;
        """,
    ),
    (
        "0005_listing_versions",
        """
        -- A version per area the listings show, bumped by triggers whoever writes, so a cached listing lives
        -- until a write to its own area: 'library' (the listed paths), 'albums', 'objects' (analysed images and
        -- their objects), 'people' (faces and people). The queue's own writes (jobs, job_items) touch none.
        CREATE TABLE listing_versions (area TEXT PRIMARY KEY, version INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
        INSERT INTO listing_versions (area) VALUES ('albums'), ('library'), ('objects'), ('people');
        -- The albums area's version at the album's last change: (id, version) never repeats, even for a reused id.
        ALTER TABLE albums ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        -- Covers all-image-objects (path order) for exactly the rows it shows.
        CREATE INDEX images_analysed ON images (path) WHERE status = 'done' AND missing_since IS NULL;

        CREATE TRIGGER images_added AFTER INSERT ON images BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE new.missing_since IS NULL
                AND (area = 'library' AND new.status != 'failed' OR area = 'objects' AND new.status = 'done');
        END;
        CREATE TRIGGER images_removed AFTER DELETE ON images BEGIN  -- objects, faces, album places: their own
            UPDATE listing_versions SET version = version + 1 WHERE old.missing_since IS NULL
                AND (area = 'library' AND old.status != 'failed' OR area = 'objects' AND old.status = 'done');
        END;
        -- An analysis storing its result (pending -> done) changes no listed path: all-images stays valid.
        CREATE TRIGGER library_changed AFTER UPDATE OF path, status, missing_since ON images
        WHEN old.path IS NOT new.path OR (old.status != 'failed' AND old.missing_since IS NULL)
            IS NOT (new.status != 'failed' AND new.missing_since IS NULL)
        BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'library';
        END;
        CREATE TRIGGER analysed_changed AFTER UPDATE OF path, status, missing_since ON images
        WHEN old.path IS NOT new.path OR (old.status = 'done' AND old.missing_since IS NULL)
            IS NOT (new.status = 'done' AND new.missing_since IS NULL)
        BEGIN
            UPDATE listing_versions SET version = version + 1
                WHERE area = 'objects' OR area = 'people' AND EXISTS (SELECT 1 FROM faces WHERE image_id = new.id);
        END;
        CREATE TRIGGER album_photo_changed AFTER UPDATE OF path, missing_since ON images
        WHEN (old.path IS NOT new.path OR (old.missing_since IS NULL) IS NOT (new.missing_since IS NULL))
            AND EXISTS (SELECT 1 FROM album_images WHERE image_id = new.id)
        BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums')
                WHERE id IN (SELECT album_id FROM album_images WHERE image_id = new.id);
        END;

        CREATE TRIGGER album_added AFTER INSERT ON albums BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums') WHERE id = new.id;
        END;
        CREATE TRIGGER album_edited AFTER UPDATE OF id, name, description, created_at ON albums BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums') WHERE id = new.id;
        END;
        CREATE TRIGGER album_removed AFTER DELETE ON albums BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
        END;
        CREATE TRIGGER album_photo_added AFTER INSERT ON album_images BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums')
                WHERE id = new.album_id;
        END;
        CREATE TRIGGER album_photo_removed AFTER DELETE ON album_images BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums')
                WHERE id = old.album_id;
        END;
        CREATE TRIGGER album_photo_moved AFTER UPDATE ON album_images BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums')
                WHERE id IN (old.album_id, new.album_id);
        END;

        CREATE TRIGGER objects_added AFTER INSERT ON objects BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'objects';
        END;
        CREATE TRIGGER objects_changed AFTER UPDATE ON objects BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'objects';
        END;
        CREATE TRIGGER objects_removed AFTER DELETE ON objects BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'objects';
        END;
        -- Any column: what the people answers read of faces and people may grow.
        CREATE TRIGGER faces_added AFTER INSERT ON faces BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'people';
        END;
        CREATE TRIGGER faces_changed AFTER UPDATE ON faces BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'people';
        END;
        CREATE TRIGGER faces_removed AFTER DELETE ON faces BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'people';
        END;
        CREATE TRIGGER people_added AFTER INSERT ON people BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'people';
        END;
        CREATE TRIGGER people_changed AFTER UPDATE ON people BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'people';
        END;
        CREATE TRIGGER people_removed AFTER DELETE ON people BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'people';
        END;
        """,
    ),
    (
        "0006_people_a_household_can_trust",
        """
        -- 1: good enough to seed or bridge a person (faces/quality.py); 0: poor; NULL: stored before.
        ALTER TABLE faces ADD COLUMN quality INTEGER;
        -- Placed by a user (moved, merged, named): no re-clustering moves it.
        ALTER TABLE faces ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE people ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
        -- "Not this person": the face never joins that person again.
        CREATE TABLE face_exclusions (
            face_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
            person_id INTEGER NOT NULL,
            PRIMARY KEY (face_id, person_id)
        ) WITHOUT ROWID;
        -- Each face's nearest faces when it was stored: what /tag/match and re-clustering walk.
        CREATE TABLE face_neighbours (
            face_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
            neighbour_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
            similarity REAL NOT NULL,
            PRIMARY KEY (face_id, neighbour_id)
        ) WITHOUT ROWID;
        CREATE INDEX face_neighbours_by_neighbour ON face_neighbours (neighbour_id);
        -- People whose faces changed since the last re-clustering (with the faces newer than clustered_up_to).
        CREATE TABLE people_touched (person_id INTEGER PRIMARY KEY);
        INSERT INTO counters VALUES ('clustered_up_to', 0);
        -- Names given before this version hold on to their faces too.
        UPDATE faces SET locked = 1 WHERE cluster_id IN (SELECT id FROM people WHERE name IS NOT NULL);
        """,
    ),
    (
        "0007_listings_read_one_index",
        f"""
        -- What view-all and all-image-objects show, kept beside the rows they walk, so each listing reads one
        -- index in order instead of joining 100,000 rows and sorting them (view-all 127 -> 20 ms, objects
        -- 128 -> 25 ms). Triggers keep both, whoever writes.

        -- The photo's path while it is on disk, NULL while it is gone: what the album listings show.
        ALTER TABLE album_images ADD COLUMN shown_path TEXT;
        UPDATE album_images SET shown_path = {SHOWN_PATH.format(image="image_id")};
        CREATE TRIGGER album_photo_shown AFTER INSERT ON album_images BEGIN
            UPDATE album_images SET shown_path = {SHOWN_PATH.format(image="new.image_id")}
                WHERE album_id = new.album_id AND position = new.position;
        END;
        CREATE TRIGGER album_photo_replaced AFTER UPDATE OF image_id ON album_images BEGIN
            UPDATE album_images SET shown_path = {SHOWN_PATH.format(image="new.image_id")}
                WHERE album_id = new.album_id AND position = new.position;
        END;
        CREATE TRIGGER album_photo_path AFTER UPDATE OF path, missing_since ON images BEGIN
            UPDATE album_images SET shown_path = iif(new.missing_since IS NULL, new.path, NULL)
                WHERE image_id = new.id;
        END;
        CREATE TRIGGER album_photo_path_shown AFTER UPDATE OF shown_path ON album_images
        WHEN old.shown_path IS NOT new.shown_path
        BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums')
                WHERE id = new.album_id;
        END;
        -- A change to what the row is bumps versions; a change to the path kept in it, album_photo_path_shown.
        DROP TRIGGER album_photo_moved;
        CREATE TRIGGER album_photo_moved AFTER UPDATE OF album_id, image_id, position ON album_images BEGIN
            UPDATE listing_versions SET version = version + 1 WHERE area = 'albums';
            UPDATE albums SET version = (SELECT version FROM listing_versions WHERE area = 'albums')
                WHERE id IN (old.album_id, new.album_id);
        END;

        -- The image's object classes, distinct and sorted, as a JSON array ('[]' or NULL when none was found).
        ALTER TABLE images ADD COLUMN classes TEXT;
        UPDATE images SET classes = {CLASSES.format(image="images.id")} WHERE id IN (SELECT image_id FROM objects);
        CREATE TRIGGER image_classes_added AFTER INSERT ON objects BEGIN
            UPDATE images SET classes = {CLASSES.format(image="new.image_id")} WHERE id = new.image_id;
        END;
        CREATE TRIGGER image_classes_removed AFTER DELETE ON objects BEGIN
            UPDATE images SET classes = {CLASSES.format(image="old.image_id")} WHERE id = old.image_id;
        END;
        CREATE TRIGGER image_classes_changed AFTER UPDATE OF image_id, label ON objects BEGIN
            UPDATE images SET classes = {CLASSES.format(image="old.image_id")} WHERE id = old.image_id;
            UPDATE images SET classes = {CLASSES.format(image="new.image_id")} WHERE id = new.image_id;
        END;
        -- An object a REPLACE is about to delete (its delete trigger runs only with recursive_triggers on): its
        -- image's classes without it.
        CREATE TRIGGER image_classes_replaced BEFORE INSERT ON objects
        WHEN EXISTS (SELECT 1 FROM objects WHERE id = new.id)
        BEGIN
            UPDATE images SET classes = {CLASSES_BUT.format(image="images.id")}
                WHERE id = (SELECT image_id FROM objects WHERE id = new.id);
        END;
        CREATE TRIGGER image_classes_replaced_by_update BEFORE UPDATE OF id ON objects
        WHEN new.id != old.id AND EXISTS (SELECT 1 FROM objects WHERE id = new.id)
        BEGIN
            UPDATE images SET classes = {CLASSES_BUT.format(image="images.id")}
                WHERE id = (SELECT image_id FROM objects WHERE id = new.id);
        END;

        -- An image row that now stands for an id its objects and album rows already name: written after them
        -- (foreign keys deferred), or its id changed.
        CREATE TRIGGER image_children_named AFTER INSERT ON images
        WHEN EXISTS (SELECT 1 FROM objects WHERE image_id = new.id)
            OR EXISTS (SELECT 1 FROM album_images WHERE image_id = new.id)
        BEGIN
            UPDATE images SET classes = {CLASSES.format(image="new.id")} WHERE id = new.id;
            UPDATE album_images SET shown_path = iif(new.missing_since IS NULL, new.path, NULL)
                WHERE image_id = new.id;
        END;
        CREATE TRIGGER image_id_changed AFTER UPDATE OF id ON images BEGIN
            UPDATE images SET classes = {CLASSES.format(image="new.id")} WHERE id = new.id;
            UPDATE album_images SET shown_path = iif(new.missing_since IS NULL, new.path, NULL)
                WHERE image_id = new.id;
        END;

        -- Covering: with the filtered columns in the index, SQLite never reads the table to check them.
        DROP INDEX images_listed;
        CREATE INDEX images_listed ON images (path, status, missing_since)
            WHERE status != 'failed' AND missing_since IS NULL;
        DROP INDEX images_analysed;
        CREATE INDEX images_analysed ON images (path, classes, status, missing_since)
            WHERE status = 'done' AND missing_since IS NULL;
        """,
    ),
    (
        "0008_listing_changes",
        """
        -- The paths whose rows in the image listings (all-images, all-image-objects) changed, oldest first: a
        -- listing kept in chunks of paths renders again only the chunks these fall in (appliance/chunks.py).
        -- The newest 10,000 are kept; a listing that saw none of them renders whole.
        CREATE TABLE listing_changes (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL);
        CREATE TRIGGER listing_path_added AFTER INSERT ON images BEGIN
            INSERT INTO listing_changes (path) VALUES (new.path);
        END;
        CREATE TRIGGER listing_path_removed AFTER DELETE ON images BEGIN
            INSERT INTO listing_changes (path) VALUES (old.path);
        END;
        CREATE TRIGGER listing_path_changed AFTER UPDATE OF path, status, missing_since, classes ON images
        WHEN old.path IS NOT new.path OR old.status IS NOT new.status OR old.missing_since IS NOT new.missing_since
            OR old.classes IS NOT new.classes  -- a second 'person' found in a photo changes nothing listed
        BEGIN
            INSERT INTO listing_changes (path) VALUES (old.path);
            INSERT INTO listing_changes (path) SELECT new.path WHERE new.path IS NOT old.path;
        END;
        -- Rows a REPLACE is about to delete (their delete triggers run only with recursive_triggers on).
        CREATE TRIGGER listing_path_replaced BEFORE INSERT ON images BEGIN
            INSERT INTO listing_changes (path) SELECT path FROM images WHERE id = new.id OR path = new.path;
        END;
        CREATE TRIGGER listing_path_replaced_by_update BEFORE UPDATE OF id, path ON images BEGIN
            INSERT INTO listing_changes (path)
                SELECT path FROM images WHERE (id = new.id OR path = new.path) AND id != old.id;
        END;
        CREATE TRIGGER listing_changes_pruned AFTER INSERT ON listing_changes BEGIN
            DELETE FROM listing_changes WHERE id <= new.id - 10000;
        END;
        """,
    ),
]
# Migrations that rebuild a table other tables refer to: SQLite's procedure runs them with foreign keys off
# (else dropping the old table would cascade), then checks every reference before committing.
REBUILDS_REFERENCED_TABLES = {"0004_library_follows_the_disk"}


class SchemaTooNew(StartupError):
    """The database was written by a newer version of the appliance."""


def applied(conn) -> list[str]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def check_not_newer(names: list[str]) -> None:
    """Refuse a database that records migrations this version does not know: it was written by a newer one."""
    unknown = sorted(set(names) - {name for name, _ in MIGRATIONS})
    if unknown:
        raise SchemaTooNew(
            f"the database was written by a newer version of the appliance (it has schema {unknown[-1]}, this"
            f" version knows up to {MIGRATIONS[-1][0]}): upgrade the appliance, or restore a backup made by this"
            " version"
        )


def migrate(conn) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied now."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT {NOW})"
    )
    done = set(applied(conn))
    check_not_newer(list(done))
    newly = []
    for number, (name, sql) in enumerate(MIGRATIONS, start=1):
        if name in done:
            continue
        rebuilds = name in REBUILDS_REFERENCED_TABLES
        if rebuilds:
            conn.execute("PRAGMA foreign_keys = OFF")  # ignored inside a transaction: before BEGIN
        try:
            # executescript commits first, so the transaction is opened inside the script itself.
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations (name) VALUES ('{name}');\n"
                # user_version mirrors the count, so tools (and old versions' users) can see the schema level.
                f"PRAGMA user_version = {number};"
            )
            if rebuilds and conn.execute("PRAGMA foreign_key_check").fetchone():
                raise RuntimeError(f"migration {name} would leave broken references; nothing was changed")
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if rebuilds:
                conn.execute("PRAGMA foreign_keys = ON")
        newly.append(name)
    return newly
