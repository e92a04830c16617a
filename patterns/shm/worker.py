"""The shared-memory background thread: unmapping, and preparing spare segments.

One daemon thread per process runs small jobs off the senders' path: unmapping a
writer's mapping once its message is sent, and preparing warm spare segments
(``_shm_spare``). Both touch every page of a mapping, which takes milliseconds per
64 MiB, so two things matter here:

- **The GIL.** On Python 3.11 ``mmap.close()`` and ``mmap.madvise()`` hold the GIL
  for the whole system call (55 ms for a populated 512 MiB mapping): a trio loop in
  the same process would stall for that long. The page work is therefore done through
  ``ctypes`` calls to ``madvise`` (which release the GIL): ``MADV_POPULATE_WRITE``
  (Linux 5.14+) to pre-fault, ``MADV_DONTNEED`` to drop the page-table entries before
  the ``mmap`` object is closed, which then has nothing left to tear down.
- **The address-space lock.** A fault-in or teardown of a whole range holds the
  process's ``mmap_lock`` throughout, blocking any ``mmap``/``munmap`` (a malloc of a
  large block, say) in other threads. The range is walked in :data:`CHUNK` steps.

``MADV_DONTNEED`` on a shared file mapping only drops this process's page-table
entries: the data stays in the file, and a borrower that still reads the range would
fault the pages back in, never see zeros or crash. It is only used on mappings whose
views were released anyway.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import logging
import math
import mmap
import os
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["CHUNK", "TICK_ACTIVE", "Worker", "address_of", "drop_pages", "populate", "unmap"]

log = logging.getLogger("patterns")

CHUNK: Final = 2 * 1024 * 1024
"""Bytes of a mapping faulted in or dropped per ``madvise`` call."""

MADV_POPULATE_WRITE: Final = 23  # Linux 5.14+; EINVAL before
MADV_DONTNEED: Final = 4

_libc = ctypes.CDLL(None, use_errno=True)
_madvise = _libc.madvise
_madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_madvise.restype = ctypes.c_int


def address_of(mapping: mmap.mmap) -> int:
    """The address of a writable mapping's first byte."""
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor  # its export of the mapping goes with it


def _advise(address: int, length: int, advice: int, going: Callable[[], bool] | None = None) -> int:
    """``madvise`` over the range, :data:`CHUNK` at a time, the GIL released; 0 or the errno
    (``ECANCELED`` when ``going()`` turned false between two steps)."""
    done = 0
    while done < length:
        if going is not None and not going():
            return errno.ECANCELED
        step = min(CHUNK, length - done)
        if _madvise(address + done, step, advice) != 0:
            return ctypes.get_errno() or errno.EIO
        done += step
    return 0


def populate(mapping: mmap.mmap, going: Callable[[], bool] | None = None) -> int:
    """Fault every page of a writable shared mapping in (allocated, zeroed, mapped writable).

    0, or the errno: ``EINVAL`` if the kernel cannot (before 5.14), ``ENOMEM``,
    ``EFAULT``... when the memory is not there (nothing faults later: it is ``madvise``),
    ``ECANCELED`` if ``going()`` said to stop."""
    return _advise(address_of(mapping), len(mapping), MADV_POPULATE_WRITE, going)


def drop_pages(mapping: mmap.mmap) -> None:
    """Drop the mapping's page-table entries (its data stays in the file)."""
    try:
        address = address_of(mapping)
    except (ValueError, TypeError):  # closed, or not writable: close() does the work then
        return
    _advise(address, len(mapping), MADV_DONTNEED)


def unmap(mapping: mmap.mmap) -> None:
    """Unmap without holding the GIL for the page-table teardown; a borrowed mapping stays."""
    drop_pages(mapping)
    try:
        mapping.close()
    except BufferError:
        pass  # a borrower appeared: it unmaps when it goes


ACTIVE: Final = 2.0
"""Seconds after a submission during which the thread polls for jobs instead of sleeping."""
POLL: Final = 0.005
"""Seconds between those polls."""
TICK_ACTIVE: Final = 0.1
"""Seconds between two ticks while the thread polls and no tick says it is due sooner
(what a sender's own thread changed, such as a segment it retired, is seen by then)."""
NICE: Final = 10
"""The thread's nice value: under contention the threads that send and receive run first
(pre-faulting a 256 MiB spare takes ~150 ms of CPU; a delivery next to it suffered)."""


def _run_job(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:
        log.exception("shared-memory background job %r failed", job)


class Worker:
    """A daemon thread that runs submitted jobs in order, and ``tick()`` when idle.

    ``tick`` returns how many seconds may pass before it is called again (None: until
    the next job; while the thread polls, at most :data:`TICK_ACTIVE`); it is called
    after every job too. A job's exception is logged, never raised.

    Waking a thread that sleeps on another CPU costs an inter-processor interrupt
    (tens of microseconds in a VM) on the waker's path, here a send's. So a submission
    only notifies the thread when it is in a deep sleep (nothing submitted for
    :data:`ACTIVE` seconds); while jobs keep coming it polls every :data:`POLL` seconds
    on its own timer, and the jobs a send causes are deferred by about that much anyway.
    """

    def __init__(self, tick: Callable[[], float | None]) -> None:
        self._tick = tick
        self._jobs: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._deep = False  # sleeping until notified (or ticked)
        self._last = 0.0  # time.monotonic() of the last submission

    def submit(self, job: Callable[[], None], *, delay: float = 0.0) -> None:
        """Run ``job`` on the thread, not before ``delay`` seconds from now (jobs run in order)."""
        with self._cond:
            self._last = now = time.monotonic()
            self._jobs.append((now + delay, job))
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, name="nngc-shm", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # the interpreter is shutting down: no new threads
                    self._jobs.pop()
                else:
                    self._thread = thread
                    return
            elif self._deep:
                self._cond.notify_all()
                return
            else:
                return
        _run_job(job)  # here and now rather than never

    def settle(self, timeout: float) -> bool:
        """Wait until every submitted job has run; False if ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy, timeout)

    def _run(self) -> None:
        try:  # background work yields the CPU to the threads that send and receive
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except OSError:
            pass  # already nicer than that (only raising the value is allowed)
        due = 0.0  # time.monotonic() from which tick() is due again
        while True:
            now = time.monotonic()
            if now >= due:  # (outside the condition: tick() takes the spares' lock)
                pause = self._safe_tick()
                # While jobs keep coming the thread wakes every POLL to look for them; a
                # look that finds none ticks only when a tick is due (or every TICK_ACTIVE):
                # each tick takes the GIL and some locks for 20-70 us (cold), which a
                # send beside it waited for.
                # Capped only while polling: in a deep sleep the tick's own pause stands
                # (capped there too, an idle process ticked ten times a second).
                if now - self._last < ACTIVE:
                    due = now + (TICK_ACTIVE if pause is None else min(pause, TICK_ACTIVE))
                else:
                    due = math.inf if pause is None else now + pause  # deep sleep
            with self._cond:
                if not self._jobs:
                    self._busy = False
                    self._cond.notify_all()  # settle()
                    left = max(0.0, due - time.monotonic())
                    if time.monotonic() - self._last < ACTIVE:
                        self._cond.wait(min(POLL, left))
                    else:
                        self._deep = True
                        self._cond.wait(None if left == math.inf else left)
                        self._deep = False
                    continue
                not_before, job = self._jobs[0]
                early = not_before - time.monotonic()
                if early > 0:
                    self._cond.wait(early)
                    continue
                self._jobs.popleft()
                self._busy = True
            _run_job(job)
            due = 0.0  # a job may change what is due: tick next

    def _safe_tick(self) -> float | None:
        try:
            return self._tick()
        except Exception:
            log.exception("shared-memory background tick failed")
            return None

    def reset_after_fork(self) -> None:
        """In a forked child: the thread did not come along; start afresh."""
        self._jobs.clear()
        self._cond = threading.Condition()
        self._thread = None
        self._busy = False
        self._deep = False
