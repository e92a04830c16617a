"""A measurement in a process of its own, so that a crash costs that measurement only.

NNG 1.11 can panic in its websocket transport (``panic: pthread_mutex_lock: Invalid
argument`` at N = 64 over ws, ``../shared/notes/nng-facts.md``); a panic aborts the whole
process. A step that hosts its side in the bench's own process lost the whole run with
it, so :func:`run_isolated` runs ``python -m <module> <out> <argv>...`` instead:

* in a session of its own, so it and everything it spawns share one process group: once it
  ended, what is left of the group gets :data:`GRACE_S` to go and is then killed (the
  children of a process that aborted would otherwise outlive it). The session also keeps
  the terminal's Ctrl-C from the group: when it stops us, the cell gets our SIGINT and
  :data:`GRACE_S`, then its group is killed. A cell module calls :func:`hear_ctrl_c` first,
  so that it ends on that SIGINT through its own clean-up even when it inherited SIGINT
  ignored;
* its stdout and stderr go to a file, copied to our stderr (``run.log`` in the suite) once
  it ended, so the reason of a failure is at hand: how the process ended and its last
  line, NNG's own ``panic:`` line where there is one (NNG prints two more lines and maybe a
  backtrace after it);
* the module writes its results to ``out`` as JSON lines, each as soon as it has it: what
  :func:`run_isolated` returns, with those written before a crash;
* its temporary directory (``TMPDIR``, for it and its children) is a folder of ours, removed
  once it ended, so a crash leaves no temporary folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GRACE_S", "Outcome", "hear_ctrl_c", "run_isolated"]

ROOT = Path(__file__).resolve().parents[1]  # the folder that holds bench/
GRACE_S = 5.0  # what is left of the process group after its leader ended: time to go before SIGKILL


@dataclass(frozen=True, slots=True)
class Outcome:
    """The JSON lines the module wrote (before it failed, if it did), and why it failed (None: it did not)."""

    results: list[Any]
    reason: str | None = None


def hear_ctrl_c() -> None:
    """(A cell, first thing.) Raise KeyboardInterrupt on SIGINT, as at a terminal. A shell
    starts a background job (``python -m bench &``, a script's) with SIGINT ignored, and an
    ignored signal stays ignored through ``exec``: the cell would not hear the SIGINT
    :func:`run_isolated` sends it when we stop, and its group would be killed after
    :data:`GRACE_S` instead, its member processes, temporary and shared-memory folders left
    to whoever sweeps next."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # (NNG's panic may end a line of progress that had no newline yet)
    panics = [line[line.index("panic:") :] for line in lines if "panic:" in line]
    return (panics or lines or ["(nothing on stderr)"])[-1][:200]


def _ended(code: int | None, killed: str) -> str:
    if code is None:
        return killed
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"its process was killed by {signal.Signals(-code).name}"
        return f"its process was killed by signal {-code}"
    return f"its process exited with status {code}"


def _wait(proc: subprocess.Popen[bytes], out: Path, timeout: float, idle: float | None) -> tuple[int | None, str]:
    """``proc``'s exit status, or None and why once it ran ``timeout`` s, or ``idle`` s
    without adding to ``out`` (a result line: the module is stuck, not slow)."""
    start = time.monotonic()
    size, moved = -1, start
    while True:
        now = time.monotonic()
        with contextlib.suppress(OSError):  # (not there before the module opened it)
            if (grown := out.stat().st_size) != size:
                size, moved = grown, now
        if now >= start + timeout:
            return None, f"no result within {timeout:g} s (killed)"
        if idle is not None and now >= moved + idle:
            return None, f"no new result within {idle:g} s (killed)"
        left = start + timeout - now if idle is None else min(start + timeout, moved + idle) - now
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(min(left, 1.0)), ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: not ours to wait for
        return False
    return True


def _end_group(pgid: int) -> None:
    """Give what is left of the process group :data:`GRACE_S` to go, then kill it."""
    deadline = time.monotonic() + GRACE_S
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """We stop before the cell ended: it gets the SIGINT we got (its own cleanup: member
    processes, temporary folders) and :data:`GRACE_S` for it, then its group is killed."""
    try:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(GRACE_S)
    finally:  # (a second Ctrl-C meanwhile ends the group at once)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _end_group(proc.pid)


def _env(tmp: str) -> dict[str, str]:
    """Ours, with the folder that holds ``bench`` first on the path (we may run from anywhere)
    and ``tmp`` as the temporary directory of the cell and its children: what they leave
    there (a crashed cell's folders) goes with ``tmp``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TMPDIR"] = tmp
    return env


def run_isolated(module: str, argv: Sequence[str], timeout: float, idle: float | None = None) -> Outcome:
    """Run ``python -m module OUT *argv`` as above: the JSON lines it wrote to ``OUT``, and why it failed.
    It is killed after ``timeout`` s, or ``idle`` s without a new result (None: no such limit)."""
    with tempfile.TemporaryDirectory(prefix="nngc-bench-cell-") as tmp:
        out, log = Path(tmp, "result.json"), Path(tmp, "output")
        with open(log, "w+b") as output:
            proc = subprocess.Popen([sys.executable, "-m", module, str(out), *argv], stdin=subprocess.DEVNULL,
                                    stdout=output, stderr=output, start_new_session=True, env=_env(tmp))  # fmt: skip
            try:
                code, killed = _wait(proc, out, timeout, idle)
                if code is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            except BaseException:  # Ctrl-C (its session keeps the terminal's SIGINT from the group)
                _interrupt(proc)
                raise
            output.flush()
            last = _last_line(log.read_text(errors="replace"))  # before the rest of the group adds to it
            _end_group(proc.pid)
        sys.stderr.write(log.read_text(errors="replace"))
        sys.stderr.flush()
        results = []
        with contextlib.suppress(OSError):
            for line in out.read_text().splitlines():
                try:
                    results.append(json.loads(line))
                except ValueError:  # (a line cut short by the crash)
                    break
        return Outcome(results, None if code == 0 else f"{_ended(code, killed)}: {last}")
