"""Large buffers travel through shared memory: what the envelope codec does with them.

On the sending side, while a body is encoded for a peer on the same host, every buffer
(``bytes``, ``bytearray``, ``memoryview``, any object with the buffer protocol such as a
numpy array, or a :class:`SharedBuffer`) of at least ``threshold`` bytes is placed in a
shared-memory segment (one copy; none for a :class:`SharedBuffer`, which is already
there) and written in the body as CBOR tag :data:`SHM_TAG` around an index into the
envelope's ``shm`` array, which holds the references (``[name, token, offset,
length]``). Smaller buffers, and every buffer for a peer elsewhere, are written inline
as CBOR byte strings (``SharedBuffer`` contents are then copied).

On the receiving side the (pure) decoder turns each tag into the :class:`ShmRef` it
indexes, checked but not attached; the receiving socket then calls :func:`resolve`,
which attaches each one and puts a read-only ``memoryview`` over the segment (no copy)
in its place. Any fault in the references (a missing, foreign, truncated or freed
segment, an index out of range or used twice, a tag without ``shm``, a socket with
shared memory off) makes the whole frame a :class:`MalformedMessage` with
``reason="shm"``; its ``__cause__`` is the :class:`SharedMemoryError` that says why.

Side effects, exactly: :meth:`Placement.put` creates segment files (through
:func:`~patterns.shm.segment.place`) and :meth:`Placement.abort` removes them;
:meth:`Placement.sent` closes the caller's handed-over buffers; :func:`resolve` maps
segments and counts this receiver as attached (the last receiver's attach removes the
name); :func:`maybe_sweep` queues a sweep of the segment directory on the background
thread; :func:`shared_buffer` creates a segment. Everything else is pure.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Self

from patterns.errors import SharedMemoryError, SharedMemoryFull
from patterns.shm.attach import attach
from patterns.shm.header import monotonic_now
from patterns.shm.ref import ShmRef
from patterns.shm.segment import BufferState, SharedBuffer, place
from patterns.shm.spare import in_background
from patterns.shm.sweep import sweep

__all__ = [
    "DEFAULT_THRESHOLD",
    "SHM_TAG",
    "Placement",
    "SharedMemory",
    "delivering",
    "holds_references",
    "maybe_sweep",
    "resolve",
    "shared_buffer",
]

log = logging.getLogger("patterns")

SHM_TAG: Final = 28_270  # 0x6E6E, "nn": the body holds a shared-memory reference here
MAX_REFERENCES: Final = 4096  # per envelope
DEFAULT_THRESHOLD: Final = 1024 * 1024
"""Buffers of at least this many bytes go through shared memory. ``bench.shm --phase
sweep`` finds shared memory faster from 128-256 KiB on (2x at 256 KiB, 6x at 1 MiB); the
default stays higher because before Python 3.13 each live received view holds a file
descriptor (docs/shared-memory.md)."""


@dataclass(frozen=True, slots=True)
class SharedMemory:
    """How a socket uses shared memory for large buffers (its ``shared_memory=`` option).

    ``enabled`` switches the fast path on for peers proven to share this host (over
    ``inproc://`` and ``ipc://`` always); ``threshold`` is the smallest buffer placed
    there; ``lease`` bounds how long a segment waits for its receivers; ``fallback``
    sends a buffer inline when the segment directory is full (else
    :class:`SharedMemoryFull` is raised); ``directory`` overrides ``/dev/shm``.
    """

    enabled: bool = True
    threshold: int = DEFAULT_THRESHOLD
    lease: float = 60.0
    fallback: bool = True
    directory: str | None = None

    def __post_init__(self) -> None:
        if type(self.threshold) is not int or self.threshold < 1:
            raise ValueError(f"shared memory threshold must be an int >= 1 byte, got {self.threshold!r}")
        if not 0 < self.lease < float("inf"):
            raise ValueError(
                f"shared memory lease must be a finite number of seconds > 0, got {self.lease!r}"
            )


OFF: Final = SharedMemory(enabled=False)

SWEEP_EVERY: Final = 30.0  # seconds between sweeps of one segment directory, per process
_last_sweep: dict[str | None, float] = {}


def maybe_sweep(directory: str | None) -> None:
    """Sweep ``directory`` (see ``_shm_sweep``) if this process has not for :data:`SWEEP_EVERY`
    seconds: at the first use, then now and then, what dead or expired peers left goes.
    The sweep itself runs on the background thread (``_shm_worker``), off the send."""
    now = monotonic_now()
    if now - _last_sweep.get(directory, -SWEEP_EVERY) < SWEEP_EVERY:
        return
    _last_sweep[directory] = now
    in_background(lambda: _sweep(directory))


def _sweep(directory: str | None) -> None:
    try:
        report = sweep(directory=directory)
    except OSError as exc:
        log.warning("sweeping shared-memory segments in %s failed: %s", directory or "/dev/shm", exc)
        return
    if report.removed:
        log.info("swept %d shared-memory segments left by others: %s", report.removed, report)


class Placement:
    """The segments of one message being encoded for ``receivers`` peers.

    Lazy: nothing is checked until the body holds a buffer of at least ``threshold``
    bytes (or a :class:`SharedBuffer`); only then is ``same_host()`` asked, once, whether
    the peers can attach what is placed (see ``BaseSocket._same_host``). A small frame
    costs one object and no IO."""

    __slots__ = (
        "_ready",
        "_seen",
        "handed",
        "inline_fallbacks",
        "made",
        "policy",
        "receivers",
        "refs",
        "same_host",
    )

    def __init__(
        self, policy: SharedMemory, receivers: int, same_host: Callable[[], bool] | None = None
    ) -> None:
        self.policy = policy
        self.receivers = receivers
        self.same_host = same_host
        self.refs: list[list[Any]] = []
        self.made: list[SharedBuffer] = []  # placed by us: discarded if the send fails
        self.handed: list[SharedBuffer] = []  # the caller's: closed once sent
        self.inline_fallbacks = 0
        self._ready: bool | None = None
        self._seen: dict[int, int] = {}  # id(value) -> index: a second encoding pass reuses it

    def put(self, value: Any, view: memoryview) -> int | None:
        """Place ``view`` (``value`` is its owner); the index of its reference, or None: send inline."""
        known = self._seen.get(id(value))
        if known is not None:
            return known
        shared = isinstance(value, SharedBuffer)
        if not shared and view.nbytes < self.policy.threshold:
            return None
        if self._ready is None:
            self._ready = self.same_host() if self.same_host is not None else True
        if not self._ready or len(self.refs) >= MAX_REFERENCES:
            return None
        if shared:
            value.set_receivers(self.receivers)
            self.handed.append(value)
            index = self._add(value.ref_for_send())
        else:
            try:
                buf = place(
                    view, lease=self.policy.lease, receivers=self.receivers, directory=self.policy.directory
                )
            except SharedMemoryFull:
                if not self.policy.fallback:
                    raise
                self.inline_fallbacks += 1
                log.warning("shared memory is full: a buffer of %d bytes goes inline", view.nbytes)
                return None
            self.made.append(buf)
            index = self._add(buf.ref_for_send())
        self._seen[id(value)] = index
        return index

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.sent()
        else:
            self.abort()

    def _add(self, ref: ShmRef) -> int:
        self.refs.append(ref.to_wire())
        return len(self.refs) - 1

    def sent(self) -> None:
        """The message went out: the caller's buffers are handed over (their views close)."""
        for buf in self.made:
            buf.handed_over()  # a receiver may attach it after this process ended
        for buf in self.handed:
            buf.handed_over()
            buf.close(unmap_later=True)  # the view goes now; the unmapping, off the send path

    def abort(self) -> None:
        """The message did not go out: remove the segments made for it."""
        for buf in self.made:
            buf.discard()


def delivering(placement: Placement | None) -> contextlib.AbstractContextManager[object]:
    """Around the send of a frame encoded with ``placement``: once the block completes, its
    buffers are handed over (:meth:`Placement.sent`); if it raises, its segments go
    (:meth:`Placement.abort`). Nothing to do without a placement. (Every send goes through
    it: a plain class, not a generator-based context manager, keeps that cheap.)"""
    return _NOTHING if placement is None else placement


_NOTHING: Final = contextlib.nullcontext()


def shared_buffer(
    size: int, *, lease: float = 60.0, directory: str | os.PathLike[str] | None = None
) -> SharedBuffer:
    """A writable buffer of ``size`` bytes in shared memory: the zero-copy producer API.

    Fill ``buf.view`` in place (``numpy.frombuffer(buf.view, dtype)`` writes straight into
    it), then send ``buf`` anywhere in a message body: a peer on this host receives a
    read-only view of the same memory, and the toolkit copies nothing. Sending hands the
    buffer over (its view closes); to a peer elsewhere its bytes go inline. The space is
    reserved first: a full ``/dev/shm`` raises :class:`SharedMemoryFull` here, never SIGBUS.
    """
    return SharedBuffer.create(size, lease=lease, receivers=1, directory=directory)


def sendable_view(value: Any) -> memoryview:
    """The bytes of a buffer-like ``value`` to send inline (a SharedBuffer's must be open)."""
    if isinstance(value, SharedBuffer):
        if value.state is not BufferState.OPEN:
            raise ValueError(f"shared buffer {value.name!r} is {value.state.value}: its bytes are gone")
        return value.view
    view = memoryview(value)
    return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())


def holds_references(body: Any) -> bool:
    """Does a decoded ``body`` hold a :class:`ShmRef` (an unresolved reference)?"""
    if type(body) is ShmRef:
        return True
    if type(body) is list:
        return any(holds_references(item) for item in body)
    if type(body) is dict:
        return any(holds_references(item) for item in body.values())
    return False


def _release(refs: list[ShmRef], policy: SharedMemory) -> None:
    """Count this receiver done with ``refs`` (attach, then let go): their senders need not
    wait for the leases of segments in a frame nobody will read."""
    for ref in refs:
        try:
            attach(ref, directory=policy.directory).release()
        except SharedMemoryError:
            pass  # unusable too: its lease or the sweep settles it


def resolve(body: Any, policy: SharedMemory) -> Any:
    """Replace every :class:`ShmRef` in a decoded ``body`` by a read-only view of its
    segment: the receiving socket's side effect (each attach counts this receiver).

    Returns ``body`` itself when it holds no reference. Raises :class:`SharedMemoryError`
    (``reason="off"`` when ``policy`` is switched off; :class:`SegmentGone`,
    :class:`BadReference` from the attach) for any fault; no view is left open then.
    """
    refs: list[ShmRef] = []
    _collect(body, refs)
    if not refs:
        return body
    if not policy.enabled:
        raise SharedMemoryError(
            f"the body refers to {len(refs)} shared-memory segment(s), which this socket does not use"
            " (its shared_memory is off)",
            name=None, reason="off",
        )  # fmt: skip
    views: dict[int, memoryview] = {}  # by id(ref): the decoder made one ShmRef per use
    try:
        for ref in refs:
            views[id(ref)] = attach(ref, directory=policy.directory)
    except BaseException as exc:
        for view in views.values():
            view.release()
        if isinstance(exc, SharedMemoryError):  # the frame is refused: release its other segments
            _release(refs[len(views) + 1 :], policy)  # now, not when their leases pass
        raise
    return _swap(body, views)


# Module functions, not closures inside resolve(): a recursive closure refers to itself
# through its cell, a cycle that kept ``views`` (and so every received segment mapped,
# its memfd open) until the cyclic GC ran. The sender could not prove the release and
# reuse the segment: 1 MiB echoes missed 9 in 10 reuses (docs/shared-memory.md §1).


def _collect(value: Any, refs: list[ShmRef]) -> None:
    if type(value) is ShmRef:
        refs.append(value)
    elif type(value) is list:
        for item in value:
            _collect(item, refs)
    elif type(value) is dict:
        for item in value.values():
            _collect(item, refs)


def _swap(value: Any, views: dict[int, memoryview]) -> Any:
    if type(value) is ShmRef:
        return views[id(value)]
    if type(value) is list:
        return [_swap(item, views) for item in value]
    if type(value) is dict:
        return {key: _swap(item, views) for key, item in value.items()}
    return value
