"""Opening a queued photo file for analysis: the file itself (never a copy), refused when it is not one.

A path was canonical and inside a library root when it was queued; by the time its turn comes it may have
been replaced by a symbolic link, a FIFO or a device, or be gone. Each of those is refused with a plain
sentence, which is stored as the file's failure reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from .paths import LibraryRoots

MAX_FILE_BYTES = 512 << 20
CHUNK_BYTES = 1 << 20
LINKED = "The path now leads through a symbolic link, which is not followed once a file is queued."
KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class SourceError(Exception):
    """This file cannot be read as a photo; the message is stored as its reason."""


def not_regular(kind: str) -> SourceError:
    return SourceError(f"This is {kind}, not a regular file; only photo files are read.")


class Source:
    """An open photo file: `file` (binary, seekable, at 0), its `stat`, and its SHA-256 `digest`."""

    def __init__(self, file: BinaryIO, stat_result: os.stat_result, max_bytes: int):
        self.file = file
        self.stat = stat_result
        self.max_bytes = max_bytes

    @cached_property
    def digest(self) -> str:
        """Hashed on first use, while open (an unchanged file needs no hash); pread leaves the position at 0."""
        sha, offset, fd = hashlib.sha256(), 0, self.file.fileno()
        # One byte past the limit tells a file that grew since its stat from one that is exactly at it.
        while chunk := os.pread(fd, min(CHUNK_BYTES, self.max_bytes + 1 - offset), offset):
            offset += len(chunk)
            if offset > self.max_bytes:
                raise SourceError(f"The file grew past {self.max_bytes} bytes while it was read; it is skipped.")
            sha.update(chunk)
        return sha.hexdigest()


@contextmanager
def open_source(path: str, roots: LibraryRoots, max_bytes: int) -> Iterator[Source]:
    """Open the queued file at `path` for reading; SourceError says why when it must not be read."""
    real = os.path.realpath(path)
    if real != path:
        raise SourceError(LINKED)
    if not roots.contains(Path(real)):
        raise SourceError("The file is outside the library folders this appliance may read.")
    try:
        # O_NOFOLLOW: a link swapped in after the check above; O_NONBLOCK: opening a FIFO must not wait.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceError("The file no longer exists.") from None
    except PermissionError:
        raise SourceError("The appliance may not read this file (permission denied).") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SourceError(LINKED) from None
        if error.errno == errno.ENXIO:  # what opening a socket gives
            raise not_regular("a socket") from None
        raise SourceError(f"Cannot read the file: {error.strerror or error}.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(KINDS.get(stat.S_IFMT(info.st_mode), "an unknown kind of file"))
    with os.fdopen(fd, "rb") as file:
        if info.st_size > max_bytes:
            raise SourceError(f"The file is {info.st_size} bytes; files over {max_bytes} bytes are skipped.")
        yield Source(file, info, max_bytes)
