"""Both ends of ``bench.shm``'s one-way deliveries, each in its own spawned process.

The parent drives two :class:`~bench._children.Child` processes, a sender
(:func:`sender`) and a receiver (:func:`receiver`), by commands (tuples ``(kind, *args)``). Each child holds any
number of *endpoints* at once, keyed by name, so the parent can interleave variants:

* a toolkit endpoint is a ``patterns.Pair`` (the receiver listens, the sender dials)
  with its own ``shared_memory=`` option and transport;
* an iceoryx2 endpoint is one publish-subscribe service of ``Slice[c_uint8]`` sized for
  one payload size, plus one event service the publisher notifies after each sample.

One delivery, as the parent runs it: ``prepare`` (sender: build the payload, outside
the clock), ``receive`` (receiver: answers ``waiting`` and parks), ``go`` (sender:
reads the clock, sends), then the receiver answers ``got`` with its clock readings.
Clocks are ``time.monotonic_ns()``: CLOCK_MONOTONIC, one clock for every process on
Linux, so the sender's start and the receiver's arrival can be subtracted.

The payload is ``size / 8`` unsigned 64-bit integers ``i + seed``; its checksum (their
sum modulo 2**64) is known in closed form, and the receiver computes it with numpy over
every byte it got: that pass is the "read once" in the report.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import trio

import patterns

from ._children import Conn, aserve

__all__ = ["MAX_MESSAGE_SIZE", "Endpoint", "checksum", "expected_checksum", "receiver", "sender"]

MAX_MESSAGE_SIZE = 1024 * 1024 * 1024  # inline frames of up to 512 MiB and their envelope
CONNECT_TIMEOUT_S = 30.0
RECEIVE_TIMEOUT_S = 120.0  # an iceoryx2 receiver gives up waiting for a sample after this long
ICEORYX2_LOG = "Error"  # iceoryx2 prints a note per process at Info when it finds no config file

Endpoint = dict[str, Any]
"""How the parent describes an endpoint: ``{"kind": "nng" | "iceoryx2", ...}`` (see ``bench.shm``)."""


def expected_checksum(size: int, seed: int) -> int:
    """The sum modulo 2**64 of the ``size // 8`` integers ``i + seed``."""
    n = size // 8
    return (n * (n - 1) // 2 + n * seed) % 2**64


def checksum(data: Any) -> int:
    """Every byte of ``data`` read once: the sum of its 64-bit integers modulo 2**64."""
    return int(np.frombuffer(data, dtype=np.uint64).sum(dtype=np.uint64))


def _fill(target: Any, size: int, seed: int) -> None:
    """Write the payload into ``target`` (a writable buffer of ``size`` bytes) in place."""
    values = np.frombuffer(target, dtype=np.uint64)
    values[:] = np.arange(size // 8, dtype=np.uint64)
    values += np.uint64(seed)
    del values


def _now() -> int:
    return time.monotonic_ns()


# ===================================================================== iceoryx2
class _Iceoryx2:
    """What both ends share: a node in a private namespace (file prefix and root folder)."""

    def __init__(self, spec: Endpoint) -> None:
        import iceoryx2 as iox2  # type: ignore[import-untyped]  # optional: only the iceoryx2 endpoints need it

        iox2.set_log_level(getattr(iox2.LogLevel, ICEORYX2_LOG))
        config = iox2.config.default()
        config.global_cfg.prefix = iox2.FileName.new(spec["prefix"])
        config.global_cfg.root_path = iox2.Path.new(spec["root"])
        self.iox2 = iox2
        self.node = iox2.NodeBuilder.new().config(config).create(iox2.ServiceType.Ipc)
        self.size = spec["size"]
        service_name = iox2.ServiceName.new(f"{spec['service']}/{self.size}")
        self.service = (
            self.node.service_builder(service_name)
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .subscriber_max_borrowed_samples(1)
            .open_or_create()
        )
        event_name = iox2.ServiceName.new(f"{spec['service']}/{self.size}/ready")
        self.event = self.node.service_builder(event_name).event().open_or_create()


class _IceoryxPublisher(_Iceoryx2):
    def __init__(self, spec: Endpoint) -> None:
        super().__init__(spec)
        self.publisher = (
            self.service.publisher_builder().initial_max_slice_len(self.size).max_loaned_samples(1).create()
        )
        self.notifier = self.event.notifier_builder().create()
        self.sample: Any = None  # loaned and filled by prepare, sent by go
        self.source: Any = None  # the copy variant's payload, copied into a loan by go

    def prepare(self, mode: str, size: int, seed: int) -> None:
        if mode == "copy":
            self.source = np.arange(size // 8, dtype=np.uint64) + np.uint64(seed)
            return
        sample = self.publisher.loan_slice_uninit(size)
        _fill(sample.payload().as_memory_view(), size, seed)
        self.sample = sample.assume_init()

    def go(self, mode: str, size: int, notify: bool) -> tuple[int, int]:
        if mode == "copy":
            t0 = _now()
            sample = self.publisher.loan_slice_uninit(size)
            ctypes.memmove(sample.payload_ptr, self.source.ctypes.data, size)
            recipients = sample.assume_init().send()
        else:
            sample, self.sample = self.sample, None
            t0 = _now()
            recipients = sample.send()
        if notify:
            self.notifier.notify()
        self.source = None
        return t0, recipients

    def close(self) -> None:
        self.sample = self.source = None
        for name in ("notifier", "publisher", "event", "service", "node"):
            with contextlib.suppress(Exception):
                getattr(self, name).delete()


class _IceoryxSubscriber(_Iceoryx2):
    def __init__(self, spec: Endpoint) -> None:
        super().__init__(spec)
        self.subscriber = self.service.subscriber_builder().create()
        self.listener = self.event.listener_builder().create()

    def wait(self, event_driven: bool, timeout: float) -> Any:
        """The next sample: sleep on the event until notified, or spin on ``receive``."""
        deadline = _now() + int(timeout * 1e9)
        if event_driven:
            step = self.iox2.Duration.from_millis(500)
            while _now() < deadline:
                self.listener.timed_wait(step)
                sample = self.subscriber.receive()
                if sample is not None:
                    return sample
        else:
            while _now() < deadline:
                sample = self.subscriber.receive()
                if sample is not None:
                    return sample
        raise TimeoutError(f"no iceoryx2 sample within {timeout} s")

    def close(self) -> None:
        for name in ("listener", "subscriber", "event", "service", "node"):
            with contextlib.suppress(Exception):
                getattr(self, name).delete()


# ===================================================================== child processes
class _Child:
    """A spawned child's endpoints under trio, which live until the process exits."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.sockets: dict[str, patterns.Pair] = {}
        self.iceoryx2: dict[str, Any] = {}
        self.handlers: dict[str, Callable[..., Any]] = {}

    async def serve(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                self.stack = stack
                await aserve(self.conn, self.handlers)
        finally:
            for endpoint in self.iceoryx2.values():
                endpoint.close()
            self.iceoryx2.clear()

    @staticmethod
    def _shared_memory(spec: Endpoint) -> patterns.SharedMemory | bool:
        if not spec["shm"]:
            return False
        return patterns.SharedMemory(threshold=spec["threshold"], directory=spec["directory"])


class Receiver(_Child):
    """Listens on each toolkit endpoint; times and reads what arrives."""

    def __init__(self, conn: Conn) -> None:
        super().__init__(conn)
        self.handlers = {"open": self.open, "receive": self.receive}
        self.raw: set[str] = set()  # endpoints that carry bare frames (send_bytes / receive_bytes)

    async def open(self, key: str, spec: Endpoint) -> tuple[str, Any]:
        if spec["kind"] == "iceoryx2":
            self.iceoryx2[key] = _IceoryxSubscriber(spec)
            return ("opened", None)
        sock = patterns.Pair(listen=spec["address"], name="receiver", max_message_size=MAX_MESSAGE_SIZE,
                             shared_memory=self._shared_memory(spec))  # fmt: skip
        await self.stack.enter_async_context(sock)
        self.sockets[key] = sock
        if spec.get("raw"):
            self.raw.add(key)
        return ("opened", sock.addresses[0])

    async def receive(self, key: str, event_driven: bool = True) -> tuple[str, Any]:
        self.conn.send(("waiting", None))
        if key in self.iceoryx2:
            sample = self.iceoryx2[key].wait(event_driven, RECEIVE_TIMEOUT_S)
            payload = sample.payload()
            data = payload.as_memory_view()
            t1 = _now()
            kind = "memoryview (iceoryx2 sample)"
            del payload
        elif key in self.raw:
            data = await self.sockets[key].receive_bytes()
            t1 = _now()
            kind = "bytes (bare frame)"
        else:
            body = await self.sockets[key].receive()
            t1 = _now()
            data = body["data"]
            kind = type(data).__name__
            del body
        total = checksum(data)
        t2 = _now()
        size = len(data) if isinstance(data, bytes) else data.nbytes
        if isinstance(data, memoryview):
            data.release()  # a shared-memory view: the segment goes now
        del data
        if key in self.iceoryx2:
            del sample  # back to the publisher
        return ("got", {"delivered_ns": t1, "read_ns": t2, "checksum": total, "bytes": size, "kind": kind})


class Sender(_Child):
    """Dials each toolkit endpoint; builds a payload, then sends it on ``go``."""

    def __init__(self, conn: Conn) -> None:
        super().__init__(conn)
        self.handlers = {"open": self.open, "prepare": self.prepare, "go": self.go}
        self.payload: Any = None
        self.scratch: dict[int, Any] = {}  # size -> a preallocated array the memcpy reference copies into
        self.copy_ms: float | None = None

    async def open(self, key: str, spec: Endpoint) -> tuple[str, Any]:
        if spec["kind"] == "iceoryx2":
            self.iceoryx2[key] = _IceoryxPublisher(spec)
            return ("opened", None)
        sock = patterns.Pair(dial=spec["address"], name="sender", max_message_size=MAX_MESSAGE_SIZE,
                             shared_memory=self._shared_memory(spec))  # fmt: skip
        await self.stack.enter_async_context(sock)
        with trio.fail_after(CONNECT_TIMEOUT_S):
            await sock.wait_for_peers(1)
        self.sockets[key] = sock
        return ("opened", None)

    async def prepare(self, key: str, mode: str, size: int, seed: int, directory: str) -> tuple[str, Any]:
        """Build the payload: ``value`` (a numpy array), ``bytes`` (its bytes, sent as a
        bare frame), ``zero_copy`` (a filled ``patterns.shared_buffer``), or for iceoryx2
        ``loan`` (a filled loaned sample) or ``copy`` (a numpy array that ``go`` copies into
        a loan)."""
        self.payload = None
        self.copy_ms = None
        if key in self.iceoryx2:
            self.iceoryx2[key].prepare(mode, size, seed)
        elif mode == "zero_copy":
            buf = patterns.shared_buffer(size, directory=directory)
            _fill(buf.view, size, seed)
            self.payload = buf
        elif mode == "value":
            self.payload = np.arange(size // 8, dtype=np.uint64) + np.uint64(seed)
            self.copy_ms = self._memcpy(self.payload)
        elif mode == "bytes":
            self.payload = (np.arange(size // 8, dtype=np.uint64) + np.uint64(seed)).tobytes()
        else:
            raise ValueError(f"unknown payload mode {mode!r}")
        return ("prepared", expected_checksum(size, seed))

    async def go(self, key: str, mode: str, size: int, notify: bool = True) -> tuple[str, Any]:
        recipients = 1
        if key in self.iceoryx2:
            t0, recipients = self.iceoryx2[key].go(mode, size, notify)
            returned = _now()
        else:
            sock, payload = self.sockets[key], self.payload
            self.payload = None
            t0 = _now()
            if mode == "bytes":
                await sock.send_bytes(payload)
            else:
                await sock.send({"data": payload})
            returned = _now()
            del payload
        return ("sent", {"start_ns": t0, "returned_ns": returned, "recipients": recipients, "copy_ms": self.copy_ms})

    def _memcpy(self, payload: Any) -> float:
        """The floor of a copying send: ``numpy.copyto`` of this very payload into an array
        whose pages exist, in this process, just before the delivery (outside its clock)."""
        target = self.scratch.get(payload.nbytes)
        if target is None:
            target = self.scratch[payload.nbytes] = np.ones_like(payload)
        t0 = time.perf_counter_ns()
        np.copyto(target, payload)
        return (time.perf_counter_ns() - t0) / 1e6


def receiver(conn: Conn) -> None:
    """The receiver's job: serve commands until the process exits."""
    trio.run(Receiver(conn).serve)


def sender(conn: Conn) -> None:
    trio.run(Sender(conn).serve)
