"""``bench.shm``'s plan: its rows (:class:`Variant`: who sends what over which endpoint) and
its phases (:class:`Phase`: which rows at which sizes, how many repeats); ``bench.shm``'s
docstring describes each row.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._shm_report import MiB

KiB = 1024


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    endpoint: str  # which endpoint of the children carries it ("iceoryx2" endpoints are per size)
    mode: str  # the sender's payload: value, zero_copy, loan, copy
    description: str
    event_driven: bool = True  # iceoryx2: the subscriber sleeps on the event (else spins)

    @property
    def iceoryx2(self) -> bool:
        return self.endpoint == "iceoryx2"


VARIANTS = (
    Variant("shm", "a", "ipc_shm", "value", "patterns.Pair ipc, shared memory (defaults), send(numpy array)"),
    Variant("ipc_inline", "b", "ipc_inline", "value", "patterns.Pair ipc, shared_memory=False"),
    Variant("ipc_raw", "b2", "ipc_raw", "bytes", "patterns.Pair ipc send_bytes(bytes): no envelope, no CBOR"),
    Variant("tcp_shm", "a2", "tcp_shm", "value", "patterns.Pair tcp 127.0.0.1, shared memory (defaults)"),
    Variant("tcp_inline", "c", "tcp_inline", "value", "patterns.Pair tcp 127.0.0.1, shared_memory=False"),
    Variant("zero_copy", "d", "ipc_shm", "zero_copy", "patterns.shared_buffer filled in place, ipc"),
    Variant("iox_loan", "e", "iceoryx2", "loan", "iceoryx2 loan filled in place, send + notify"),
    Variant("iox_loan_poll", "e2", "iceoryx2", "loan", "iceoryx2 loan, subscriber spins", event_driven=False),
    Variant("iox_copy", "e3", "iceoryx2", "copy", "iceoryx2 loan + copy of the array, send + notify"),
    Variant("sweep_shm", "f", "ipc_sweep", "value", "ipc, SharedMemory(threshold=1 KiB)"),
    Variant("sweep_inline", "f", "ipc_inline", "value", "ipc, shared_memory=False"),
    Variant("sweep_raw", "f", "ipc_raw", "bytes", "ipc, send_bytes(bytes) (no envelope, no CBOR)"),
)
VARIANT_BY_KEY = {v.key: v for v in VARIANTS}


@dataclass(frozen=True)
class Phase:
    name: str
    variants: tuple[str, ...]
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    repeats: int
    quick_repeats: int
    warmup: int


PHASES = (
    Phase("large", ("shm", "tcp_shm", "ipc_inline", "ipc_raw", "tcp_inline", "iox_copy"), (64 * MiB, 512 * MiB), (64 * MiB,), 5, 3, 1),
    Phase("flat", ("zero_copy", "iox_loan", "iox_loan_poll"),
          (1 * MiB, 8 * MiB, 64 * MiB, 256 * MiB, 512 * MiB), (1 * MiB, 64 * MiB), 7, 3, 1),
    Phase("sweep", ("sweep_shm", "sweep_inline", "sweep_raw"),
          (16 * KiB, 64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB, 4 * MiB),
          (16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB), 15, 7, 2),
)  # fmt: skip
PHASE_BY_NAME = {p.name: p for p in PHASES}
