"""Large buffers through shared memory between processes on one host.

A socket whose peers share its host (always over ``ipc://`` and ``inproc://``; over
tcp when each peer proved it with a beacon segment) sends every buffer of at least
:attr:`SharedMemory.threshold` bytes as a *segment*: named by a file in ``/dev/shm``
(or the configured directory), written once into a memfd sealed against shrinking (so
its sender cannot truncate it under a receiver), named in the frame by a
:class:`ShmRef`, and mapped read-only by each receiver through the sender's
``/proc/<pid>/fd``: it gets a ``memoryview`` of it instead of a copy. A segment lives
until every receiver it was made for attached it, its lease ran out or its sender
ended; whatever a dead process left behind is swept. ``docs/shared-memory.md`` explains the
design and its limits; ``docs/wire-format.md`` the references' wire form.

The public names:

* :class:`SharedMemory`: a socket's policy (``shared_memory=`` on every pattern);
* :func:`shared_buffer` / :class:`SharedBuffer`: a writable segment to fill in place and
  send with no copy at all; :class:`BufferState` says whether it is still usable;
* :class:`ShmRef`: a reference as it arrives in a body decoded by the pure
  :func:`patterns.decode`, before :func:`resolve` attaches it (the sockets do this);
* :func:`sweep` / :class:`SweepReport`: remove what dead or expired senders left;
* :class:`PoolStatistics`: the process's reused segments, as ``sock.statistics().shm_pool``.

The errors are in :mod:`patterns.errors` (``SharedMemoryError`` and its subclasses).
The other modules here (``attach``, ``beacon``, ``creation``, ``header``, ``inflight``, ``memfd``,
``making``, ``pool``, ``ring``, ``segment``, ``spare``, ``worker``) are the machinery: their names may change.
"""

from patterns.shm.codec import DEFAULT_THRESHOLD, SharedMemory, holds_references, resolve, shared_buffer
from patterns.shm.pool import PoolStatistics
from patterns.shm.ref import ShmRef
from patterns.shm.segment import BufferState, SharedBuffer
from patterns.shm.sweep import SweepReport, sweep

__all__ = [
    "DEFAULT_THRESHOLD",
    "BufferState",
    "PoolStatistics",
    "SharedBuffer",
    "SharedMemory",
    "ShmRef",
    "SweepReport",
    "holds_references",
    "resolve",
    "shared_buffer",
    "sweep",
]
