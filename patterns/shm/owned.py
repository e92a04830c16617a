"""Segments of ours whose reference never left this process: removed at exit.

A segment can only be attached by someone who holds its reference (its name and
random token). Until its reference is taken (``SharedBuffer.ref`` or ``ref_range``) or
a socket has sent it, nobody can need it: a ``shared_buffer()`` that is never sent, a
``place()`` whose send failed, a beacon whose connection outlived nothing. Those are
filed here by path and removed at interpreter exit, like the warm spares, instead of
waiting in ``/dev/shm`` for the next sweep. A segment whose reference went out is
never removed here: a receiver may still be about to attach it (its lease or the
sweep of a dead owner's segments takes care of it).

Only paths are kept (no buffer objects): a buffer collected unsent is still removed.
"""

from __future__ import annotations

import atexit
import os
import threading

from patterns.shm.header import unlink_quietly

__all__ = ["forget", "keep", "remove_all"]

_lock = threading.Lock()
_paths: set[str] = set()
_pid = os.getpid()


def keep(path: str) -> None:
    """``path`` is a segment of ours whose reference has not left: remove it at exit."""
    with _lock:
        _paths.add(path)


def forget(path: str) -> None:
    """``path``'s reference left (or the segment is gone already): leave it alone at exit."""
    with _lock:
        _paths.discard(path)


def remove_all() -> int:
    """Remove every segment still filed here (in the process that made them); how many."""
    with _lock:
        paths = list(_paths) if os.getpid() == _pid else []
        _paths.clear()
    for path in paths:
        unlink_quietly(path)
    return len(paths)


def _reset_after_fork() -> None:
    """In a forked child: the parent's segments are not ours (their names carry its pid)."""
    global _lock, _pid
    _lock = threading.Lock()
    _paths.clear()
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(remove_all)
