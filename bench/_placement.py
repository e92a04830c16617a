"""Where the bench's processes run and which address its tcp listeners take.

By default everything runs on this machine and listens on 127.0.0.1. ``python -m bench
--hosts`` (:mod:`bench._hosts_suite`) runs a step's measuring process on one host of a
namespace bed and sets two variables there, inherited by what it starts:

* ``NNGC_BENCH_ADDRESS``: the address every listener of the bench binds and every client
  dials (the room host, the dispatcher, nats-server, redis-server, the ZeroMQ ROUTER): that
  host's own address, so the members and workers on the other hosts reach it;
* ``NNGC_BENCH_SPAWN``: executables (``os.pathsep``-separated) that start a Python child on
  another host; :class:`bench._children.Child` number ``i`` uses the ``i % len``-th, so the
  children of one step spread over those hosts in turn. The executables unset it, so a
  child's own children stay where it is.

Environment variables rather than parameters: every scenario and peer reads them at the one
place it picks an address or starts a child, and runs unchanged on one host or across hosts.
Nothing here imports the toolkit.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["ADDRESS_ENV", "LOOPBACK", "SPAWN_ENV", "address", "spawn_executable"]

ADDRESS_ENV: Final = "NNGC_BENCH_ADDRESS"
SPAWN_ENV: Final = "NNGC_BENCH_SPAWN"
LOOPBACK: Final = "127.0.0.1"


def address() -> str:
    """The address the bench's tcp listeners bind and its clients dial (default 127.0.0.1)."""
    return os.environ.get(ADDRESS_ENV) or LOOPBACK


def spawn_executable(index: int) -> str | None:
    """The executable that starts child number ``index`` elsewhere, or None (here, as usual)."""
    listed = [part for part in os.environ.get(SPAWN_ENV, "").split(os.pathsep) if part]
    return listed[index % len(listed)] if listed else None
