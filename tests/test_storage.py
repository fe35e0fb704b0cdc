"""The data layer on real SQLite files, with each driver this interpreter has (both in CI)."""

from __future__ import annotations

import sqlite3
import types
from pathlib import Path

import pytest
import sqlean
import sqlite_vec

from appliance.db import Database, connect, sqlite_module
from appliance.migrations import MIGRATIONS, applied

DRIVERS = [sqlean] + ([sqlite3] if hasattr(sqlite3.Connection, "enable_load_extension") else [])


def test_stdlib_is_used_when_it_can_load_extensions_else_sqlean():
    assert sqlite_module(types.SimpleNamespace(Connection=object)) is sqlean
    with_loading = types.SimpleNamespace(Connection=type("C", (), {"enable_load_extension": None}))
    assert sqlite_module(with_loading) is with_loading


@pytest.mark.parametrize("driver", DRIVERS, ids=lambda m: m.__name__)
def test_connection_setup(tmp_path, driver):
    conn = connect(tmp_path / "a.db", driver)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v")
    conn.execute("CREATE VIRTUAL TABLE v USING vec0(embedding float[4] distance_metric=cosine)")
    # extension loading is switched off again once sqlite-vec is in
    with pytest.raises(driver.OperationalError, match="not authorized"):  # not "cannot open": loading is off
        conn.execute("SELECT load_extension(?)", (sqlite_vec.loadable_path(),))
    conn.close()


@pytest.mark.parametrize("driver", DRIVERS, ids=lambda m: m.__name__)
def test_migrations_apply_once_and_are_recorded(tmp_path, driver):
    db = Database(tmp_path / "a.db", driver)
    assert applied(db.read()) == [name for name, _ in MIGRATIONS]
    db.close()
    db = Database(tmp_path / "a.db", driver)  # a second open applies nothing
    assert db.read().execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    db.close()


def test_write_rolls_back_on_any_exception(tmp_path):
    db = Database(tmp_path / "a.db")
    with pytest.raises(RuntimeError):
        with db.write() as conn:
            conn.execute("INSERT INTO albums (name) VALUES ('half')")
            raise RuntimeError("boom")
    assert db.read().execute("SELECT count(*) FROM albums").fetchone()[0] == 0
    with db.write() as conn:
        conn.execute("INSERT INTO albums (name) VALUES ('whole')")
    assert db.read().execute("SELECT name FROM albums").fetchall()[0][0] == "whole"
    db.close()


def test_deleting_an_image_cascades(tmp_path):
    db = Database(tmp_path / "a.db")
    with db.write() as conn:
        conn.execute("INSERT INTO images (id, path) VALUES (1, '/p/a.jpg')")
        conn.execute("INSERT INTO albums (id, name) VALUES (1, 'x')")
        conn.execute("INSERT INTO album_images (album_id, image_id, position) VALUES (1, 1, 1)")
        conn.execute("INSERT INTO objects (image_id, label, score, x1, y1, x2, y2) VALUES (1, 'cat', .9, 0, 0, 1, 1)")
    with db.write() as conn:
        conn.execute("DELETE FROM images WHERE id = 1")
    counts = [db.read().execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("album_images", "objects")]
    assert counts == [0, 0]
    db.close()


def test_old_finished_jobs_are_pruned_but_not_unfinished_ones(tmp_path):
    from appliance import jobs

    db = Database(tmp_path / "a.db")
    old, pending, recent = (
        jobs.enqueue(db, "images", [Path(f"/p/{n}.jpg")]).job_id for n in ("old", "pending", "recent")
    )
    with db.write() as conn:
        conn.execute("UPDATE job_items SET state = 'done' WHERE job_id IN (?, ?)", (old, recent))
        conn.execute("UPDATE jobs SET created_at = '2020-01-01T00:00:00Z' WHERE id IN (?, ?)", (old, pending))
    assert jobs.prune(db, keep_days=30) == 1
    left = {row[0] for row in db.read().execute("SELECT id FROM jobs")}
    assert left == {pending, recent}
    assert db.read().execute("SELECT count(*) FROM job_items").fetchone()[0] == 2
    db.close()
