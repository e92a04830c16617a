"""The suite's poll, work and large-payload scenarios: ``bench.poll``, ``bench.distribute`` and
``bench.shm`` run through their own functions, their rows turned into :class:`Metric` records.

* poll: time from ``room.poll()`` to its result, members answering at once (async
  handlers), N = 1, 8 (quick) or 1, 8, 32, 64, over ipc and tcp; the full run adds raw
  pynng surveys at N = 8 (the moment all N replies were in: NNG's best case if N is known).
* work: acknowledged tasks/s, ``consensus.Dispatcher`` and 2 ``consensus.Worker``
  processes, 64-byte tasks, over ipc and tcp, and over ipc with one worker SIGKILLed once
  40% of the outcomes are in (a spare starts at that moment).
* large: one-way delivery of 64 MiB (full run: also 512 MiB) between two processes,
  shared memory vs inline vs iceoryx2; the full run adds the zero-copy producer.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from ._schema import TOOLKIT, Metric, Skip
from .peers._util import WORK_ROUNDS

__all__ = ["measure_large", "measure_poll", "measure_work"]

Records = list[Metric | Skip]


# ===================================================================== poll
def measure_poll(quick: bool, transports: tuple[str, ...] = ("ipc", "tcp")) -> Records:
    from . import poll

    argv = ["--quick", "--polls", "50"] if quick else ["--polls", "100"]
    for n in (1, 8) if quick else (1, 8, 32, 64):
        argv += ["--n", str(n)]
    for transport in transports:
        argv += ["--transport", transport]
    argv += ["--handler", "async"]
    argv += ["--raw-polls", "0"] if quick else ["--raw-polls", "2", "--raw-n", "8"]
    args = poll.parse_args(argv)
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-poll-")
    try:
        rows = poll.measure(args, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    out: Records = []
    for row in rows:
        if row["kind"] == "consensus":
            variant = f"room.poll ({row['handler']} handler)"
            stats, system, transport = row["wall"], TOOLKIT, row["transport"]
        else:
            if row["all_replies"] is None:
                out.append(Skip("poll", "pynng", "Surveyor0", f"N={row['n']}: not every reply arrived"))
                continue
            variant = "Surveyor0 sync, all N replies in (its recv loop ends only at survey_time)"
            stats, system, transport = row["all_replies"], "pynng", "ipc"
        for name, key in (("gather_median_ms", "median_ms"), ("gather_p99_ms", "p99_ms")):
            out.append(Metric("poll", system, variant, transport, 0, row["n"], name, stats[key], "ms"))
    return out


# ===================================================================== work
WORK_VARIANT = "Dispatcher, 2 Workers, acked"
KILL_VARIANT = "Dispatcher, 2 Workers, acked, one SIGKILLed mid-run"


def measure_work(quick: bool, transports: tuple[str, ...] = ("ipc", "tcp")) -> Records:
    from . import distribute
    from ._distribute_jobs import WORKERS, Knobs, Pool

    n = 50_000 if quick else 200_000
    out: Records = []
    pool = Pool(WORKERS + 1)  # the spare replaces the killed worker
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-work-")
    try:
        pool.start()
        phases = [(t, "toolkit") for t in transports] + [("ipc", "kill")]
        for transport, phase in phases:
            args = distribute.parse_args(["--quick", "--n", str(n), "--transport", transport])
            knobs = Knobs(args.concurrency, None if args.prefetch < 0 else args.prefetch, args.max_batch)
            rounds = 1 if phase == "kill" else WORK_ROUNDS  # the peers' figures are medians of as many
            rows: list[dict[str, Any]] = [
                distribute._run_phase(pool, phase, args, tmpdir, knobs) for _ in range(rounds)
            ]
            row = sorted(rows, key=lambda r: r["rate"])[len(rows) // 2]
            variant = KILL_VARIANT if phase == "kill" else WORK_VARIANT
            out.append(Metric("work", TOOLKIT, variant, transport, 64, WORKERS, "tasks_per_s", row["rate"],
                              "tasks/s", higher_is_better=True))  # fmt: skip
            kill = row.get("kill")
            if kill:
                out.append(Metric("work", TOOLKIT, variant, transport, 64, WORKERS, "kill_pause_ms",
                                  kill["longest_pause_after_kill_ms"], "ms"))  # fmt: skip
                out.append(Metric("work", TOOLKIT, variant, transport, 64, WORKERS, "redelivered",
                                  row["distribution"]["redelivered"], "tasks"))  # fmt: skip
    finally:
        pool.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


# ===================================================================== large
LARGE_VARIANTS: dict[str, tuple[str, str, str]] = {  # shm key -> (system, variant, transport)
    "shm": (TOOLKIT, "Pair, shared memory", "shm"),
    "tcp_shm": (TOOLKIT, "Pair over tcp, shared memory", "shm"),
    "ipc_inline": (TOOLKIT, "Pair, inline", "ipc"),
    "ipc_raw": (TOOLKIT, "Pair send_bytes, bare frame", "ipc"),
    "tcp_inline": (TOOLKIT, "Pair, inline", "tcp"),
    "zero_copy": (TOOLKIT, "shared_buffer, zero-copy", "shm"),
    "iox_loan": ("iceoryx2", "loan, zero-copy, event", "shm"),
    "iox_loan_poll": ("iceoryx2", "loan, zero-copy, spinning", "shm"),
    "iox_copy": ("iceoryx2", "loan + copy, event", "shm"),
}


def measure_large(quick: bool) -> Records:
    import importlib.util

    if importlib.util.find_spec("numpy") is None:
        return [
            Skip(
                "large", TOOLKIT, "shared memory vs inline", "numpy not installed: pip install -e '.[bench]'"
            )
        ]
    from . import shm

    args = shm.parse_args(["--quick"] if quick else [])
    phases = [shm.PHASE_BY_NAME["large"]] + ([] if quick else [shm.PHASE_BY_NAME["flat"]])
    run = shm.Run(args)
    try:
        rows = shm.measure(run, phases)
    finally:
        cleanup = run.close()
    out: Records = []
    for row in rows:
        system, variant, transport = LARGE_VARIANTS[row["variant"]]
        size = row["size_bytes"]
        out.append(
            Metric("large", system, variant, transport, size, 1, "delivered_ms", row["delivered_ms"], "ms")
        )
        if row["delivered_gb_per_s"] is not None:
            out.append(Metric("large", system, variant, transport, size, 1, "gb_per_s", row["delivered_gb_per_s"],
                              "GB/s", higher_is_better=True))  # fmt: skip
    if run.iceoryx2_skipped:
        reason = run.iceoryx2_skipped
        out.append(
            Skip("large", "iceoryx2", "loan", reason if "iceoryx2" in reason else f"iceoryx2: {reason}")
        )
    if cleanup["toolkit_segments_left"]:
        left = len(cleanup["toolkit_segments_left"])
        out.append(
            Skip("large", TOOLKIT, "cleanup", f"{left} shared-memory segments were left behind (removed)")
        )
    return out
