"""Backup and restore of the database with SQLite's online backup: consistent while the service runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .datadir import DATABASE_FILE, DataDirInUse, DataDirLock
from .db import connect, sqlite_module
from .migrations import SchemaTooNew, applied, check_not_newer


class BackupError(Exception):
    pass


def check_database(path: Path) -> None:
    module = sqlite_module()
    try:
        conn = connect(path, module)
    except module.DatabaseError as error:
        raise BackupError(f"{path} is not a usable SQLite database: {error}") from None
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"{path} fails its integrity check: {result}")
        names = applied(conn)
        if not names:
            raise BackupError(f"{path} is not an appliance database (no schema migrations recorded)")
        check_not_newer(names)
    except SchemaTooNew as error:
        raise BackupError(f"{path}: {error}") from None
    finally:
        conn.close()


def copy_database(source: Path, target: Path) -> None:
    """Copy through the backup API into a temporary file, check it, then move it into place."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = connect(source)
    dst = connect(partial)
    try:
        src.backup(dst)  # one step: a single consistent snapshot, even while the service writes
    finally:
        dst.close()
        src.close()
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    check_database(partial)
    os.replace(partial, target)


def backup(data_dir: Path, destination: Path) -> Path:
    source = data_dir / DATABASE_FILE
    if not source.is_file():
        raise BackupError(f"no database at {source}: check --data-dir")
    if destination.is_dir():
        destination = destination / f"appliance-{time.strftime('%Y%m%d-%H%M%S')}.db"
    if destination.exists() and os.path.samefile(destination, source):
        raise BackupError(f"{destination} is the database itself: choose a file or folder elsewhere")
    if not destination.parent.is_dir():
        raise BackupError(f"the folder {destination.parent} does not exist: create it or choose another destination")
    copy_database(source, destination)
    return destination


def restore(data_dir: Path, source: Path) -> Path | None:
    """Replace the data dir's database with `source`, refused while the appliance runs on that data dir (it
    would go on writing into the replaced file); the old one is kept aside."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    check_database(source)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with DataDirLock(data_dir):
            return replace_database(data_dir, source)
    except DataDirInUse as error:
        raise BackupError(str(error)) from None


def replace_database(data_dir: Path, source: Path) -> Path | None:
    target = data_dir / DATABASE_FILE
    kept = None
    if target.exists():
        kept = target.with_name(f"{DATABASE_FILE}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
        copy_database(target, kept)
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    copy_database(source, target)
    return kept
