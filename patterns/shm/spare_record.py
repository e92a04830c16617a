"""A warm spare segment's record and the size classes spares are filed by (:mod:`patterns.shm.spare`).

A payload of ``n`` bytes belongs to the class of ``n`` rounded up to a multiple of an
eighth of the largest power of two not above it, so a spare is at most 1/8 larger than
the payload it serves.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["MIN_PAGE", "Spare", "size_class"]

MIN_PAGE: Final = 4096


@dataclass(frozen=True, slots=True)
class Spare:
    """A prepared segment: its file (``file`` open), its payload memfd (``fd``, not sealed
    yet: its size is cut to the payload's when taken), its writable pre-faulted mapping."""

    path: Path
    fd: int
    file: int
    inode: int  # of the file
    payload_inode: int  # of the memfd
    mapping: mmap.mmap
    capacity: int  # payload bytes the file holds
    usable_until: float  # CLOCK_MONOTONIC; dropped after


def size_class(size: int) -> int:
    """The payload capacity of the spares that serve a payload of ``size`` bytes."""
    if size <= MIN_PAGE:
        return MIN_PAGE
    granule = max(MIN_PAGE, 1 << (size.bit_length() - 4))
    return -(-size // granule) * granule
