"""What the two ends of each scenario of :mod:`bench.calls` share: the far end
(:mod:`bench._calls_far`) runs in a spawned child, the near end (:mod:`bench._calls_near`)
in the bench's process. Each end switches its ``counter`` on for the messages it counts and
off after them (``on()`` / ``off()``: a :class:`Switch`, :class:`bench.calls.Counter` or
:class:`bench._calls_cpu.CpuMeter`)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["MEMBERS", "PAYLOAD", "SECRET", "Switch"]

SECRET = "bench.calls: a room secret"  # the *_secret scenarios: what a secret adds to a poll, a hotline

MEMBERS = 8
PAYLOAD = (bytes(range(256)) * 1)[:64]


class Switch(Protocol):
    def on(self) -> None: ...

    def off(self) -> None: ...
