"""The suite survives a crash in one poll cell (as NNG 1.11's ws panic aborts its process), and
sweeps the shared-memory folders of dead runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import _cells, _suite, poll
from bench._goals import _poll_goals, poll_cell
from bench._schema import TOOLKIT, Metric, Skip
from patterns.shm.header import start_time


def test_an_aborted_cell_is_a_skip_with_its_reason_and_the_step_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    groups: list[int] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        proc = real(*args, **kwargs)
        groups.append(proc.pid)
        return proc

    monkeypatch.setattr(_cells.subprocess, "Popen", popen)
    records = poll.suite_step(True, transports=("ws", "ipc"), ns=(1, 2, 3), polls=3, abort=frozenset({(2, "ws")}))
    skips = [r for r in records if isinstance(r, Skip)]
    assert [s.variant for s in skips] == [poll_cell(2, "ws")]
    assert "killed by SIGABRT" in skips[0].reason and "panic: injected" in skips[0].reason
    measured = {(m.transport, m.n) for m in records if isinstance(m, Metric)}
    assert measured == {("ws", 1), ("ws", 3), ("ipc", 1), ("ipc", 2), ("ipc", 3)}  # the cells before and after
    assert {(m.system, m.name) for m in records if isinstance(m, Metric)} == {
        (system, name) for system in (TOOLKIT, "pynng") for name in ("gather_median_ms", "gather_p99_ms")}
    assert len(groups) == 2  # the cells until the abort, and those after it
    for pgid in groups:  # the aborted host's member process went with it
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
    goals = _poll_goals([r for r in records if isinstance(r, Metric)], skips)
    floor = goals[1]
    assert floor["status"] in ("SKIP", "FAIL") and "N=2 ws" in floor["detail"] and "SIGABRT" in floor["detail"]


def test_a_cell_that_writes_nothing_is_a_skip_too(tmp_path: Path) -> None:
    outcome = _cells.run_isolated("json.tool", [str(tmp_path / "missing.json")], timeout=60)
    assert outcome.results == [] and outcome.reason is not None
    assert "exited with status" in outcome.reason and "No such file" in outcome.reason  # argparse, last line


CRASH_CELL = """
import json, os, sys, tempfile
folder = tempfile.mkdtemp(prefix="nngc-bench-poll-")  # as bench._poll_cell's, which a crash skips removing
with open(sys.argv[1], "w") as out:
    out.write(json.dumps({"folder": folder}) + "\\n")
os.abort()
"""


def test_a_crashed_cell_leaves_no_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its temporary directory is the folder :func:`bench._cells.run_isolated` removes."""
    (tmp_path / "crash_cell.py").write_text(CRASH_CELL)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    outcome = _cells.run_isolated("crash_cell", [], timeout=60)
    assert outcome.reason is not None and "SIGABRT" in outcome.reason
    (made,) = outcome.results
    folder = Path(made["folder"])
    left = folder.exists()
    shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"the crashed cell's {folder} is still there"


# ---------------------------------------------------------------- the goals without a cell
def gather(system: str, variant: str, transport: str, n: int, value: float) -> Metric:
    return Metric("poll", system, variant, transport, 0, n, "gather_median_ms", value, "ms")


def metrics(room: float) -> list[Metric]:
    return [gather(TOOLKIT, "room.poll (async handler)", "tcp", 8, room),
            gather("pynng", "Surveyor0 trio floor (knows N)", "tcp", 8, 1.0),
            gather("nats", "scatter-gather", "tcp", 8, 2.0), gather("nats", "scatter-gather", "tcp", 64, 5.0)]  # fmt: skip


LOST = Skip("poll", TOOLKIT, poll_cell(64, "tcp"), "failed: its process was killed by SIGABRT: panic: boom")


def test_a_goal_that_passes_without_a_cell_it_needs_is_a_skip_that_says_why() -> None:
    nats, floor = _poll_goals(metrics(1.1), [LOST])
    for goal in (nats, floor):
        assert goal["status"] == "SKIP" and "N=64 tcp: failed" in goal["detail"] and "panic: boom" in goal["detail"]
        assert "measured: N=8" in goal["detail"] or "measured: tcp N=8" in goal["detail"]
    nats, floor = _poll_goals(metrics(1.1), [])
    assert nats["status"] == floor["status"] == "PASS"


def test_a_failing_goal_stays_failed_and_a_cell_it_does_not_need_changes_nothing() -> None:
    nats, floor = _poll_goals(metrics(2.5), [LOST])
    assert nats["status"] == floor["status"] == "FAIL" and "not measured: N=64 tcp" in nats["detail"]
    ws = Skip("poll", TOOLKIT, poll_cell(64, "ws"), "failed: its process was killed by SIGABRT: panic: boom")
    nats, floor = _poll_goals(metrics(1.1), [ws])
    assert nats["status"] == "PASS" and floor["status"] == "SKIP" and "N=64 ws" in floor["detail"]


# ---------------------------------------------------------------- /dev/shm folders of dead runs
def test_the_folders_of_dead_runs_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)  # fmt: skip
    dead_pid = int(ended.stdout)
    me, start = os.getpid(), start_time(os.getpid())
    names = {
        f"nngc-suite-{me}-{start}-live": True,  # this process: a live run
        f"nngc-suite-{me}-{(start or 0) + 1}-reused": False,  # its pid, another start time: a dead run's
        f"nngc-suite-{dead_pid}-{start}-dead": False,
        "nngc-suite-a1b2c3d4": True,  # named before runs named their folders: its owner is unknown
        "nng-consensus-suite-x": True,  # not the bench's
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "segment").write_bytes(b"x")
    swept = _suite.sweep(tmp_path)
    assert sorted(swept) == sorted(name for name, kept in names.items() if not kept)
    assert {p.name for p in tmp_path.iterdir()} == {name for name, kept in names.items() if kept}


# ---------------------------------------------------------------- Ctrl-C while a cell runs
HANG_CELL = """
import os, subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["HANG_FIFO"], "w") as fifo:
    fifo.write(f"{os.getpid()} {kid.pid}\\n")
time.sleep(600)
"""


def _read_line(fifo: Path, timeout: float) -> str:
    """A line from the FIFO ``fifo``, waited for at most ``timeout`` s (select: no sleeps)."""
    import select
    import time

    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # (opens without a writer; Linux: no HUP before one)
    data, deadline = b"", time.monotonic() + timeout
    try:
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, f"nothing came through {fifo} within {timeout} s: {data!r}"
            if select.select([fd], [], [], left)[0]:
                data += os.read(fd, 100)
    finally:
        os.close(fd)
    return data.decode()


def test_ctrl_c_in_the_step_ends_the_cell_and_what_it_started(tmp_path: Path) -> None:
    """The cell runs in a session of its own, so the terminal's SIGINT reaches the bench only:
    the bench must end the cell's process group itself, or it runs on (here: 600 s)."""
    (tmp_path / "hang_cell.py").write_text(HANG_CELL)
    fifo = tmp_path / "pids"
    os.mkfifo(fifo)
    root = str(Path(_cells.__file__).resolve().parents[1])
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path), root]), "HANG_FIFO": str(fifo)}
    # Ctrl-C as at a terminal: a suite started in the background by a shell (`make test &`, CI)
    # inherits SIGINT ignored, and so would the bench, which then never hears it.
    bench = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from bench import _cells; _cells.run_isolated('hang_cell', [], 600)")
    parent = subprocess.Popen([sys.executable, "-c", bench], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    cell = 0
    try:
        cell, _kid = map(int, _read_line(fifo, 60).split())
        parent.send_signal(signal.SIGINT)  # as Ctrl-C does: the foreground group is the bench's only
        _, err = parent.communicate(timeout=60)
        assert b"KeyboardInterrupt" in err  # (it still says why it stopped)
        with pytest.raises(ProcessLookupError):  # the cell and the process it started went with it
            os.killpg(cell, 0)
    finally:
        parent.kill()
        parent.wait()
        if cell:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cell, signal.SIGKILL)


# ---------------------------------------------------------------- a cell that hangs
STALL_CELL = """
import json, sys, time
with open(sys.argv[1], "w") as out:
    out.write(json.dumps({"cell": 1}) + "\\n")
    out.flush()
    time.sleep(600)  # hung in its second cell
"""


def test_a_cell_that_hangs_is_killed_after_one_cells_time_not_the_steps(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The step's deadline is one cell's time per cell left (9 cells: 90 min in a quick run):
    a cell that hangs is killed once no cell ended for ``idle`` seconds, its results kept."""
    (tmp_path / "stall_cell.py").write_text(STALL_CELL)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    outcome = _cells.run_isolated("stall_cell", [], timeout=600, idle=2)
    assert outcome.results == [{"cell": 1}]
    assert outcome.reason is not None and "no new result within 2 s (killed)" in outcome.reason


# ---------------------------------------------------------------- a cell that inherited SIGINT ignored
def _cell_argv(out: Path, cell: str, *extra: str) -> list[str]:
    """``python -m bench._poll_cell`` started as a shell's background job starts it: SIGINT
    ignored (inherited through exec)."""
    ignored = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
               "os.execv(sys.executable, [sys.executable, '-m', 'bench._poll_cell', *sys.argv[1:]])")
    return [sys.executable, "-c", ignored, str(out), "--cell", cell, "--raw-polls", "0", "--no-floor",
            "--no-pattern", *extra]  # fmt: skip


def _read_until(stream: Any, mark: bytes, timeout: float) -> bytes:
    """What ``stream`` (a pipe) gave until ``mark`` came, waited for at most ``timeout`` s."""
    import select
    import time

    fd, data, deadline = stream.fileno(), b"", time.monotonic() + timeout
    while mark not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no {mark!r} within {timeout} s: {data[-500:]!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"the stream ended before {mark!r}: {data[-500:]!r}"
            data += chunk
    return data


@pytest.mark.parametrize("after", [0.0, 0.1, 0.3])
def test_a_cell_that_inherited_sigint_ignored_ends_on_sigint_through_its_own_clean_up(
    short_tmp: Path, after: float
) -> None:
    """The SIGINT :func:`bench._cells.run_isolated` sends a cell when the bench stops: heard,
    the cell stops its member processes and removes its folders itself (ignored, it ran on
    until its group was killed, and they were left). ``after``: not a wait for anything, where
    the interrupt lands: at once, or while the members join (there the clean-up once read the
    members' pending "ready" as a wrong answer and ended with a RuntimeError instead)."""
    tmp = short_tmp  # (its rooms' ipc paths are made in its own folder there: they must stay short)
    env = os.environ | {"PYTHONPATH": str(Path(_cells.__file__).resolve().parents[1]), "TMPDIR": str(tmp)}
    cell = subprocess.Popen(_cell_argv(tmp / "out.json", "1:ipc", "--polls", "1000000"), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        _read_until(cell.stderr, b"ipc async ...", 120)  # its member process started, the room opens
        workers = [pid for pid, cmd in _suite._children(cell.pid) if "resource_tracker" not in cmd]
        assert workers and list(tmp.glob("nngc-bench-poll-*")), "the cell has no member process or folder"
        time.sleep(after)
        cell.send_signal(signal.SIGINT)
        assert cell.wait(60) == -signal.SIGINT  # its KeyboardInterrupt, not a kill
        assert b"KeyboardInterrupt" in cell.stderr.read()
        for pid in workers:  # stopped and reaped by the cell
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not list(tmp.glob("nngc-bench-poll-*"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cell.pid, signal.SIGKILL)
        cell.wait()
        cell.stderr.close()  # type: ignore[union-attr]


# ---------------------------------------------------------------- a cell run by hand
def test_a_killed_cell_run_by_hand_leaves_its_beacons_in_a_run_folder_the_next_run_sweeps(short_tmp: Path) -> None:
    """Outside a suite's shared-memory folder a cell makes a run folder of its own, named as the
    suite's: what it leaves when killed (the tcp connections' beacons) is swept with it, never
    left in /dev/shm itself."""
    from patterns.shm.header import DIRECTORY_ENV, HEADER, Header

    env = {k: v for k, v in os.environ.items() if k != DIRECTORY_ENV}
    env["PYTHONPATH"] = str(Path(_cells.__file__).resolve().parents[1])
    env["TMPDIR"] = str(short_tmp)  # (the folder its abort leaves there goes with this one)
    shm = _suite.SHM_ROOT
    cell = subprocess.Popen(_cell_argv(short_tmp / "out.json", "1:tcp", "--polls", "3", "--abort-at", "1:tcp"),
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    mine: list[Path] = []
    try:
        _, err = cell.communicate(timeout=120)
        assert cell.returncode == -signal.SIGABRT and b"panic: injected" in err, err[-2000:]
        for path in shm.glob("nngc.*"):  # (/dev/shm itself: what the cell's processes made there)
            with contextlib.suppress(OSError, ValueError), open(path, "rb") as segment:
                header = Header.unpack(segment.read(HEADER.size))
                if isinstance(header, Header) and header.owner.pid == cell.pid:
                    mine.append(path)
        assert mine == [], f"the cell left segments in {shm} itself: {mine}"
        folders = [p for p in shm.glob(f"{_suite.SUITE_PREFIX}{cell.pid}-*")]
        assert len(folders) == 1 and list(folders[0].glob("nngc.*")), f"no run folder with beacons: {folders}"
        assert folders[0].name in _suite.sweep(shm) and not folders[0].exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cell.pid, signal.SIGKILL)
        cell.wait()
        for path in mine:
            path.unlink(missing_ok=True)
