"""Room on the data dir's disk, in bytes and in inodes: what "full" means, and the error a full disk raises."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DiskFull

# Ingest pauses below this much room, so that albums and names can still be saved.
RESERVE_BYTES = 16 << 20
RESERVE_INODES = 64


@dataclass(frozen=True)
class Room:
    free_bytes: int
    free_inodes: int | None  # None where the file system does not count inodes

    @property
    def full(self) -> bool:
        return self.free_bytes < RESERVE_BYTES or (self.free_inodes is not None and self.free_inodes < RESERVE_INODES)

    def describe(self) -> str:
        inodes = f", {self.free_inodes} free inodes (files)" if self.free_inodes is not None else ""
        return f"{self.free_bytes} bytes{inodes}"


def room(folder: Path) -> Room:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return Room(0, None)
    return Room(stats.f_bavail * stats.f_frsize, stats.f_favail if stats.f_files else None)


def full_error(folder: Path) -> DiskFull:
    return DiskFull(str(folder), room(folder).describe())
