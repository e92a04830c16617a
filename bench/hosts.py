"""A bed of hosts in network namespaces: several "machines" on one switch, for tests and benches.

::

    with hosts.Bed(3) as bed:                  # h0, h1, h2 on one bridge
        room = bed.hosts[0].popen([sys.executable, "room_host.py", f"tcp://{bed.hosts[0].ip}:7000"])
        ...
        bed.hosts[2].cut()                      # its cable pulled: the port on the switch goes down
        bed.hosts[2].mend()

Each host is a network namespace with one interface (``eth0``, ``10.213.0.<10+i>/24``) whose
other end is a port of a bridge living in a namespace of its own (the switch), so nothing of
the bed appears in the machine's own network: no address, no route, no device. The subnet is
the same for every bed: two beds never share a switch, so their addresses cannot meet.

Each host also has its own mount namespace with a private tmpfs on ``/dev/shm``, held by a
keeper process (``sleep``) that every process of the host joins with ``nsenter``. Processes
on one host share ``/dev/shm`` (the same-host proof of ``patterns.shm.beacon`` holds between
them); processes on two hosts do not (large payloads go inline, as between two machines).
The tmpfs disappears with the last process of its host: no file is left in ``/dev/shm``.

Cleaning up: :meth:`Bed.close` (also on ``with`` exit, whatever happened) kills every process
started on the bed, then deletes the namespaces, which takes the veth pairs and the bridge
with them. Names are ``nngcbed-<pid>-<token>-<role>``: unique per bed, and a bed whose maker
died (an aborted run) is found and removed by :func:`sweep`, which touches only namespaces
named so whose maker is gone.

Needs root, ``ip`` (iproute2), ``unshare`` and ``nsenter`` (util-linux): :func:`unavailable`
says in one line why a bed cannot be built here, or returns None.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Final, Self

__all__ = ["Bed", "Host", "end", "sweep", "unavailable"]

PREFIX: Final = "nngcbed"
SUBNET: Final = "10.213.0"  # a /24; host i is .10+i (private range, only inside the bed's namespaces)
SHM_SIZE: Final = "1g"  # a ceiling, not a reservation: tmpfs takes memory only for what is written
SHM_DIR_ENV: Final = "NNG_CONSENSUS_SHM_DIR"  # patterns.shm.header.DIRECTORY_ENV (made in each host's tmpfs)
_NAME: Final = re.compile(rf"^{PREFIX}-(\d+)-([0-9a-f]+)-(\w+)$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@functools.cache
def unavailable() -> str | None:
    """Why a bed cannot be built on this machine (one line), or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (the tests that build them run in CI as root)"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command is missing (iproute2 / util-linux)"
    probe = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"'ip netns add' failed: {made.stderr.strip() or made.returncode}"
        veth = _ip(
            "-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1", check=False
        )
        if veth.returncode != 0:
            return f"veth pairs cannot be made: {veth.stderr.strip() or veth.returncode}"
        mount = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=1m",
             "nngcbed", "/dev/shm"], check=False, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if mount.returncode != 0:
            return f"a private /dev/shm cannot be mounted: {mount.stderr.strip() or mount.returncode}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"network namespaces unusable: {exc}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(netns: str) -> None:
    """Kill the processes left in one of the bed's namespaces (by pid, as ``ip netns pids`` lists them)."""
    listed = _ip("netns", "pids", netns, check=False)
    for word in listed.stdout.split():
        try:
            os.kill(int(word), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def sweep() -> list[str]:
    """Remove the namespaces of beds whose maker process is gone; returns their names.

    Only names of this module's form are looked at (``nngcbed-<pid>-...``), so another
    program's namespaces, and a bed still in use by a live process, are left alone."""
    listed = _ip("netns", "list", check=False)
    removed = []
    for line in listed.stdout.splitlines():
        name = line.split(" ", 1)[0]
        match = _NAME.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        _kill_inside(name)
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


@dataclass(eq=False)
class Host:
    """One machine of the bed: a network namespace, an address, a private ``/dev/shm``."""

    name: str  # h0, h1, ...
    netns: str
    ip: str
    port: str  # its port on the switch (the other end of its eth0)
    switch: str  # the switch's namespace
    keeper: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def command(self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None) -> list[str]:
        """``argv`` run inside this host (its network and its mounts), in ``cwd`` (default:
        ours; entering a mount namespace would otherwise start it in ``/``)."""
        if self.keeper is None:
            raise RuntimeError(f"host {self.name} is not up (its bed is closed)")
        wd = os.fspath(cwd if cwd is not None else os.getcwd())
        return ["nsenter", f"--target={self.keeper.pid}", "--mount", "--net", f"--wd={wd}", "--", *argv]

    def popen(self, argv: Sequence[str], *, text: bool = True, stdin: int | IO[Any] | None = subprocess.PIPE,
              stdout: int | IO[Any] | None = subprocess.PIPE, stderr: int | IO[Any] | None = None,
              cwd: str | os.PathLike[str] | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[Any]:  # fmt: skip
        """Start ``argv`` on this host; the bed kills it on close if it still runs."""
        proc = subprocess.Popen(
            self.command(argv, cwd), stdin=stdin, stdout=stdout, stderr=stderr, text=text, env=env
        )
        self.processes.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on this host to its end (a setup command, a probe)."""
        return subprocess.run(
            self.command(argv), check=False, capture_output=True, text=True, timeout=timeout
        )

    def cut(self) -> None:
        """Pull this host's cable: its port on the switch goes down (connections stall, then break)."""
        _ip("-n", self.switch, "link", "set", self.port, "down")

    def mend(self) -> None:
        """Plug it back: the port comes up and forwards at once (no spanning tree on the switch)."""
        _ip("-n", self.switch, "link", "set", self.port, "up")

    def stop(self) -> None:
        """Kill every process this host started (the keeper last: it holds the mounts)."""
        for proc in self.processes:
            end(proc)
        self.processes.clear()
        if self.keeper is not None:
            end(self.keeper)
            self.keeper = None


def end(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot die
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class Bed:
    """``count`` hosts (2 to 200) on one switch; a context manager that removes all of it."""

    def __init__(self, count: int = 3) -> None:
        if not 2 <= count <= 200:
            raise ValueError(f"a bed has 2 to 200 hosts, not {count}")
        sweep()
        self.tag = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        self.switch = f"{self.tag}-sw"
        self.hosts: tuple[Host, ...] = tuple(
            Host(f"h{i}", f"{self.tag}-h{i}", f"{SUBNET}.{10 + i}", f"p{i}", self.switch)
            for i in range(count)
        )
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<Bed {self.tag}: {', '.join(f'{h.name}={h.ip}' for h in self.hosts)}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def _netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._netns(self.switch)
        # No multicast snooping: with no querier on the bridge, snooping could stop mDNS.
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts:
            self._netns(host.netns)
            _ip("-n", self.switch, "link", "add", host.port, "type", "veth", "peer", "name", "eth0",
                "netns", host.netns)  # fmt: skip
            _ip("-n", self.switch, "link", "set", host.port, "master", "br0")
            _ip("-n", self.switch, "link", "set", host.port, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            # Multicast (mDNS: 224.0.0.251) leaves by eth0: the bed has no default route.
            _ip("-n", host.netns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            host.keeper = self._keeper(host)

    def _keeper(self, host: Host) -> subprocess.Popen[bytes]:
        """The process holding the host's mount namespace: a tmpfs on /dev/shm, the suite's
        segment directory made in it, then ``sleep`` until the bed closes."""
        script = (
            f'mount -t tmpfs -o size={SHM_SIZE},mode=1777 {host.netns} /dev/shm || exit 1; '
            f'if [ -n "${SHM_DIR_ENV}" ]; then mkdir -p "${SHM_DIR_ENV}" || exit 1; fi; '
            'echo up; exec sleep infinity'
        )  # fmt: skip
        keeper = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert keeper.stdout is not None
        if keeper.stdout.readline().strip() != b"up":
            keeper.wait(timeout=10)
            error = keeper.stderr.read().decode(errors="replace").strip() if keeper.stderr else ""
            raise RuntimeError(f"host {host.name}: its private /dev/shm could not be set up: {error}")
        return keeper

    def close(self) -> None:
        """Kill the bed's processes, then delete its namespaces (idempotent)."""
        for host in self.hosts:
            host.stop()
        for name in reversed(self._made):
            _kill_inside(name)  # anything a test started there by other means
            _ip("netns", "del", name, check=False)
        self._made.clear()
