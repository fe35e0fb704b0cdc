"""The data dir's own files: the database, the API token, and the lock saying which process uses them."""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path

from .errors import StartupError

DATABASE_FILE = "appliance.db"
TOKEN_FILE = "api-token"
LOCK_FILE = "appliance.lock"
MIN_TOKEN_LENGTH = 16


class DataDirInUse(StartupError):
    pass


class DataDirLock:
    """An exclusive lock on DATA_DIR/appliance.lock, held by the serving process (and by a restore), so a
    second server or a restore cannot replace the database under a running one. The kernel drops the lock
    when the process dies, so a crash never leaves it stale."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUse(
                f"the appliance (pid {holder}) is running with the data dir {self.data_dir}: stop it first"
                " (sudo systemctl stop appliance)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def write_durably(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a small file so that a crash leaves either no file or the whole of it (temp file, fsync, rename,
    fsync of the folder)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def stored_token(data_dir: Path) -> tuple[str, bool]:
    """The token kept in DATA_DIR/api-token, made now if there is none; returns (token, whether it is new)."""
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        write_durably(path, token + "\n")
        return token, True
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise StartupError(
            f"cannot read the API token file {path} ({reason}): let the appliance's user read it, or delete it"
            " to have a new token generated"
        ) from None
    if len(token) < MIN_TOKEN_LENGTH:
        state = "empty" if not token else f"shorter than {MIN_TOKEN_LENGTH} characters"
        raise StartupError(
            f"the API token file {path} is {state}: delete it to have a new token generated at the next start,"
            f" or write a token of at least {MIN_TOKEN_LENGTH} characters into it"
        )
    return token, False
