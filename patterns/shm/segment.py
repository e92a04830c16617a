"""Shared-memory segments: a writer fills one in place, receivers map it read-only.

A segment is a plain file in the segment directory (``/dev/shm``, or
``$NNG_CONSENSUS_SHM_DIR``, or ``directory=``), named ``nngc.<owner pid>.<32 hex>``,
made with mode 0600 (receivers run as the same user). It holds the header of
``_shm_header`` and is as long as the segment, but sparse: the payload lives in a memfd
of the writer's (``_shm_memfd``), sealed against shrinking and growing before the
reference can leave, from offset 4096 (its first page is zeros but for the stamp of
``_shm_header``). Once every receiver released it, it may carry a later payload under a
new name (``_shm_ring``). The writer
holds that memfd until the name is gone or the lease passed (``_shm_inflight``). ``multiprocessing.shared_memory``
is not used: before Python 3.13 its resource tracker unlinks segments behind our back.

Writer::

    buf = SharedBuffer.create(size, lease=30.0, receivers=1)   # space reserved first
    buf.view[:] = data            # or numpy.frombuffer(buf.view, dtype)[...] = ...
    send(buf.ref.to_wire())       # a small reference travels instead of the bytes
    buf.close()                   # the writer's mapping goes; the name stays

    buf = place(data, lease=30.0)  # or: copy an existing buffer in (one copy, unmapped after)

Receiver::

    view = attach(ShmRef.from_wire(obj))   # a read-only memoryview, no copy

Lifecycle, precisely:

- The *name* (the file in the directory) is what lets a receiver attach. The one
  receiver of a segment removes it as it attaches; with several, each :func:`attach`
  decrements the header's ``pending`` count under an exclusive ``flock`` and the one
  that brings it to 0 unlinks the name. The name also goes when
  the lease passes (the next :func:`attach` or ``sweep`` removes it; an attach after
  the deadline fails with ``SegmentGone("expired")`` even if the file is still there),
  when the owner process is dead (``sweep``: a writer that exits before its receivers
  attached loses that delivery; at a normal exit it waits a little for them), or when
  the writer calls
  :meth:`SharedBuffer.discard`. A segment whose reference never left this process (no
  ``ref`` taken, never sent) goes when the process exits normally (``owned``).
- The *memory* lives while the name exists or any process still maps the file.
  Unlinking never invalidates a mapping: a view obtained before stays valid.
- A receiver has *released* a segment when it has attached (so the name no longer
  waits for it) and its memoryview, and every object that borrowed its buffer (slices,
  ``numpy.frombuffer`` arrays), has been released (``view.release()``) or collected.
  The view is the only owner of its mapping: the mmap object is referenced by nothing
  else, so CPython unmaps it when the last borrower goes. No ``__del__`` of ours is
  involved; a released memoryview raises ``ValueError`` on use, never faults.
- The writer's mapping follows the same rule: :meth:`SharedBuffer.close` releases the
  writable view and unmaps at once, unless something still borrows the view (a numpy
  array over it), in which case the mapping goes with that borrower.

Every check a receiver makes before touching a payload byte is listed in ``_shm_attach``;
where a new segment comes from (a released one reused, a warm spare, or fresh) is ``creation``.

Python < 3.13's mmap keeps a duplicate of the file descriptor open per mapping, so each
live view holds one descriptor; from 3.13 on none is kept.
"""

from __future__ import annotations

import dataclasses
import fcntl
import mmap
import os
import struct
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import patterns.shm.spare as spares
from patterns.errors import Closed, SharedMemoryError
from patterns.shm import creation, inflight, making, owned, ring
from patterns.shm.attach import attach, attach_all
from patterns.shm.header import PAYLOAD_OFFSET, PENDING_OFFSET, Header, unlink_quietly
from patterns.shm.ref import ShmRef

__all__ = ["BufferState", "SharedBuffer", "attach", "attach_all", "place"]

RECEIVERS: Final = struct.Struct("<II")  # the header's receivers and pending counts, side by side


class BufferState(Enum):
    """Where a :class:`SharedBuffer` stands."""

    OPEN = "open"
    """Mapped: ``view`` is writable."""
    CLOSED = "closed"
    """The writer's mapping is dropped; the name stays for the receivers."""
    DISCARDED = "discarded"
    """The writer unlinked the name; receivers that attached before keep their views."""


class SharedBuffer:
    """A writable shared-memory segment: the zero-copy producer side.

    Make one with :meth:`create` (or :func:`place`), fill ``view`` in place, send
    ``ref``; then :meth:`close`. Not thread-safe; a context manager that closes.
    """

    def __init__(
        self,
        path: str | Path,
        header: Header,
        mapping: mmap.mmap | None,
        payload: int = -1,
        inode: int = 0,
        slot: ring.Slot | None = None,
    ) -> None:
        self._path = os.fspath(path)  # (a str: no Path built on a send's path)
        name = self._path.rpartition("/")[2]
        self._slot = slot  # its memfd may carry a later payload once released (``_shm_ring``)
        if slot is not None and mapping is not None:
            slot.writer = True  # until close() releases the view: no reuse while we may write
        self._header = header
        self._mmap = mapping
        # The payload memfd is held here until the reference leaves (then ``inflight``
        # holds it for the receivers) or the buffer is discarded or collected unsent.
        self._payload = [payload]  # (closed by ``__del__`` if the buffer goes unsent)
        self._inode = inode
        self._view = None if mapping is None else memoryview(mapping)[PAYLOAD_OFFSET : header.total_size]
        self._state = BufferState.CLOSED if mapping is None else BufferState.OPEN
        self._ref = ShmRef(name, header.token, 0, header.payload_length)
        self._out = False  # its reference left: it must outlive this process (``owned``)
        owned.keep(self._path)

    @classmethod
    def create(
        cls,
        size: int,
        *,
        lease: float,
        receivers: int = 1,
        directory: str | os.PathLike[str] | None = None,
    ) -> SharedBuffer:
        """A new segment of ``size`` payload bytes for ``receivers`` attaches within ``lease`` seconds.

        The space is reserved (``posix_fallocate``) before the file is mapped: if the
        directory is too small, :class:`~patterns.SharedMemoryFull` is raised and no file
        is left, and writing to ``view`` can never raise SIGBUS. The payload starts zeroed.
        """
        return creation.make(
            SharedBuffer, size, lease=lease, receivers=receivers, directory=directory, flags=0, source=None
        )

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> BufferState:
        return self._state

    @property
    def name(self) -> str:
        return self._ref.name

    @property
    def path(self) -> Path:
        return Path(self._path)

    @property
    def size(self) -> int:
        """Payload bytes."""
        return self._header.payload_length

    @property
    def receivers(self) -> int:
        return self._header.receivers

    @property
    def lease_deadline(self) -> float:
        """CLOCK_MONOTONIC seconds after which receivers can no longer attach."""
        return self._header.lease_deadline

    @property
    def ref(self) -> ShmRef:
        """The reference to the whole payload (once taken, the segment outlives this process)."""
        self.handed_over()
        return self._ref

    def ref_for_send(self) -> ShmRef:
        """The reference, for a socket about to send it: :meth:`handed_over` follows the send."""
        return self._ref

    def handed_over(self) -> None:
        """The reference left this process: no longer removed at exit (``owned``)."""
        if not self._out:
            self._out = True
            owned.forget(self._path)
            payload, self._payload[0] = self._payload[0], -1
            if payload >= 0:
                inflight.hold(self._path, payload, self._inode, self._header.lease_deadline, self._slot)
                spares.check_held_soon()

    @property
    def view(self) -> memoryview:
        """The writable payload (format ``"B"``); raises Closed once the buffer is closed."""
        if self._view is None:
            raise Closed(f"shared buffer {self.name!r} is {self._state.value}: its view is gone")
        return self._view

    def ref_range(self, offset: int, length: int) -> ShmRef:
        """A reference to ``length`` payload bytes at ``offset`` (several may share one segment)."""
        if type(offset) is not int or type(length) is not int or offset < 0 or length < 0:
            raise ValueError(f"range {offset!r}+{length!r} of {self.name!r}: need integers >= 0")
        if offset + length > self.size:
            raise ValueError(f"range {offset}+{length} of {self.name!r} ends past its {self.size} bytes")
        self.handed_over()
        return ShmRef(self.name, self._header.token, offset, length)

    def set_receivers(self, receivers: int) -> None:
        """Say how many receivers will attach (a socket sets it when it sends the buffer).

        Only before the reference has gone out: it rewrites the header's ``receivers``
        and ``pending`` counts under the same lock receivers take."""
        making.check_arguments(self.size, 1.0, receivers)
        if self._state is BufferState.DISCARDED:
            raise Closed(f"shared buffer {self.name!r} was discarded")
        if receivers == self._header.receivers == self._header.pending:
            return  # already so (one receiver, the usual case): no file access
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise SharedMemoryError(
                f"shared buffer {self.name!r}: cannot set its receivers: {exc}", name=self.name, reason="map"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, RECEIVERS.pack(receivers, receivers), PENDING_OFFSET - 4)
        finally:
            os.close(fd)
        self._header = dataclasses.replace(self._header, receivers=receivers, pending=receivers)

    # ------------------------------------------------------------------ lifecycle

    def close(self, *, unmap_later: bool = False) -> None:
        """Drop the writer's mapping (the name stays until the receivers attach or the lease ends).

        If something still borrows ``view`` (a numpy array over it), the mapping goes
        with that borrower instead. With ``unmap_later`` the view is released now and the
        unmapping (tens of ms at 512 MiB) happens on the background thread, without the
        GIL (``_shm_worker``), off the sender's path. Idempotent.
        """
        view, mapping = self._view, self._mmap
        self._view = self._mmap = None
        if self._state is BufferState.OPEN:
            self._state = BufferState.CLOSED
        if view is None or mapping is None:
            return
        try:
            view.release()
        except BufferError:
            return  # still borrowed: the last borrower's release unmaps
        if self._slot is not None:
            free = making.unborrowed(mapping)
            if free is False:
                return  # a slice of the view outlived it: never reused; its release unmaps
            if free is None:  # no way to tell but unmapping: pooled only if that works
                try:
                    mapping.close()
                except BufferError:
                    return
                ring.keep_mapping(self._slot, mapping, keep=False)
                return
            if ring.keep_mapping(self._slot, mapping, keep=self._out):
                return  # sent: kept, mapped, for the memfd's next payload (unsent, it may never be)
        if unmap_later:
            spares.unmap_later(mapping)
        else:
            making.close_quietly(mapping)

    def discard(self) -> None:
        """Unlink the name now and drop the mapping; receivers that attached keep their views."""
        self.close()
        self._state = BufferState.DISCARDED
        unlink_quietly(self._path)
        owned.forget(self._path)
        if self._slot is not None and not self._out:
            ring.forget(self._slot, spares.unmap_later)  # its memfd closes here: never reused
        making.close_held(self._payload)  # (once handed over, ``inflight`` sees the name go and closes it)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self, _close: Any = os.close) -> None:
        """A buffer collected unsent closes the payload memfd it still holds. (A method, not
        a ``weakref.finalize`` per buffer: that cost 15-20 us on a cold send's path. ``os.close``
        is bound early: this may run while the interpreter tears its modules down.)"""
        box = self.__dict__.get("_payload")
        if box is not None and box[0] >= 0:
            fd, box[0] = box[0], -1
            try:
                _close(fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"<SharedBuffer {self.name} {self.size} bytes {self._state.value}>"


def place(
    data: Any,
    *,
    lease: float,
    receivers: int = 1,
    directory: str | os.PathLike[str] | None = None,
) -> SharedBuffer:
    """Copy a bytes-like object into a new segment; return the buffer, already closed.

    One copy for C-contiguous inputs (bytes, bytearray, memoryview, array, a numpy
    array of any shape; a non-contiguous one is first made contiguous). Into a warm
    spare of the size class (``_shm_spare``) when one waits: a memcpy into pre-faulted
    pages. Otherwise into a new file with ``pwrite``, not through a mapping: faster on
    fresh tmpfs pages (no page faults, no zeroing), and a full directory is an
    ``ENOSPC`` error (SharedMemoryFull, the file removed), never a SIGBUS. The result's
    ``ref`` is ready to send; ``discard()`` unlinks it if the send fails.
    """
    with memoryview(data) as source:
        flat = source.cast("B") if source.c_contiguous else memoryview(source.tobytes())
        with flat:
            return creation.make(
                SharedBuffer, flat.nbytes, lease=lease, receivers=receivers, directory=directory, flags=0,
                source=flat,
            )  # fmt: skip
