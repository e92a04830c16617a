"""One-way delivery of one large payload between two processes: shared memory vs inline vs iceoryx2.

Issue 6's goals, measured in one run: at 64 MiB shared memory is at least 20x faster
than ipc inline; with the zero-copy producer API delivery time is nearly flat from 1 MiB
to 512 MiB; the toolkit stays within 3x of iceoryx2 at each size. The threshold sweep
shows where shared memory starts to beat inline transfer (the default threshold,
``patterns.shm.codec.DEFAULT_THRESHOLD``, is chosen from it).

Rows (each a separate spawned sender and receiver process; NNG is not fork-safe):

* ``a`` ``shm``: ``patterns.Pair`` over ipc with the default options, ``send({"data": array})``
  of a numpy array: the toolkit copies it into a shared-memory segment once and sends a
  reference; the receiver gets a read-only memoryview over the segment.
* ``a2`` ``tcp_shm``: the same over tcp on 127.0.0.1 (a tcp peer is proven to share the
  host by its beacon segment, so the array goes through shared memory too).
* ``b`` ``ipc_inline``: the same with ``shared_memory=False``: the bytes travel in the frame.
* ``b2`` ``ipc_raw``: the payload's bytes as one bare frame (``send_bytes`` /
  ``receive_bytes``: no envelope, no CBOR): what the ipc transport itself costs, to tell
  the encoder's share of ``b`` from NNG's.
* ``c`` ``tcp_inline``: the same as ``b`` over tcp on 127.0.0.1.
* ``d`` ``zero_copy``: ``patterns.shared_buffer(size)`` filled in place by numpy before the
  clock starts, then ``send({"data": buf})`` over ipc: nothing is copied.
* ``e`` ``iox_loan``: iceoryx2 (the zero-copy reference): a sample of ``Slice[c_uint8]``
  loaned and filled in place before the clock, then ``send()`` and a notify on an event
  service; the subscriber sleeps on the event (as the toolkit's receiver sleeps on NNG's
  descriptor), then ``receive()``s and takes ``payload().as_memory_view()``.
* ``e2`` ``iox_loan_poll``: the same, but the subscriber spins on ``receive()`` (no event):
  iceoryx2's best case, paid for with a busy core.
* ``e3`` ``iox_copy``: iceoryx2 loan + copy of an existing numpy array + send + notify, all
  on the clock: the equivalent of row ``a``.
* ``f`` ``sweep_shm`` / ``sweep_inline`` / ``sweep_raw``: the threshold sweep over ipc at
  16 KiB..4 MiB (quick: 16, 64, 256 KiB, 1 and 4 MiB): ``SharedMemory(threshold=1 KiB)`` (every payload through shared memory) vs
  ``shared_memory=False`` vs bare frames, as ``a``, ``b`` and ``b2``.

What is timed, per delivery: ``delivered`` runs from just before ``send`` (``go``) until
the receiver holds the payload as a Python object (the memoryview or bytes of
``body["data"]``, or iceoryx2's memoryview); ``+ read`` until it has also read every byte
once (numpy sums the payload as 64-bit integers, which is also the checksum the run
verifies, so every delivery is checked). ``send()`` is how long the sender's call took.
Clocks are CLOCK_MONOTONIC in both processes. Before each delivery the sender builds its
payload (outside the clock) and the receiver reports that it is about to park; the
sender starts ``SETTLE_S`` later. The variants of one phase are interleaved at each size
(rotating order, after ``--warmup`` untimed rounds), and each row is the median of
``--repeats`` deliveries. The payload is ``size / 8`` integers ``i + repeat``.

Segments go to a private folder on /dev/shm's tmpfs, iceoryx2 to a private prefix and
root; both are checked and removed at the end (a leftover is reported), and every child
process is reaped.

    python -m bench.shm            # 64 and 512 MiB, zero-copy at 1..512 MiB, 5-7 repeats
    python -m bench.shm --quick    # 64 MiB; zero-copy at 1 and 64 MiB; 3 repeats
    python -m bench.shm --phase sweep --repeats 30
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _cli
from ._children import Child
from ._common import size_label
from ._schema import TOOLKIT, Metric, Skip
from ._shm_plan import PHASE_BY_NAME, PHASES, VARIANT_BY_KEY, VARIANTS, KiB, Phase, Variant
from ._shm_report import compute_ratios, crossover, render, summarize_rows

SHM_ROOT = Path("/dev/shm")
SETTLE_S = 0.02  # between the receiver's "waiting" and the sender's "go": it is parked by then
STEP_TIMEOUT_S = 180.0  # one prepare, delivery or open (512 MiB inline over tcp takes seconds)
SWEEP_THRESHOLD = KiB  # the sweep's shared-memory rows place every payload in shared memory


# ===================================================================== the two pairs of processes
@dataclass
class Pair:
    """A sender and a receiver child with the endpoints opened on them so far."""

    kind: str  # "toolkit" or "iceoryx2"
    sender: Any
    receiver: Any
    opened: set[str] = field(default_factory=set)

    def stop(self) -> list[int]:
        pids = []
        for child in (self.sender, self.receiver):
            pids.append(child.pid)
            child.stop()
        return pids


class Run:
    """Everything one benchmark run holds: children, private folders, what failed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = tempfile.mkdtemp(prefix="nngc-bench-ipc-")  # ipc sockets
        self.segments = tempfile.mkdtemp(prefix="shm-bench-", dir=SHM_ROOT)  # the toolkit's segments
        self.iox_prefix = f"nngcb{os.getpid()}_"
        self.iox_root = tempfile.mkdtemp(prefix="nngc-bench-iox-") + "/"
        self.iceoryx2_skipped: str | None = None
        self.iceoryx2_error: str | None = None  # the traceback, when it failed
        if args.no_iceoryx2:
            self.iceoryx2_skipped = "--no-iceoryx2"
        elif importlib.util.find_spec("iceoryx2") is None:
            self.iceoryx2_skipped = "iceoryx2 is not installed (pip install -e '.[bench]')"
        self.pairs: dict[str, Pair] = {}
        self.reaped: list[int] = []

    def pair(self, kind: str) -> Pair:
        if kind not in self.pairs:
            from ._shm_peers import receiver, sender

            self.pairs[kind] = Pair(kind, Child(f"{kind}-sender"), Child(f"{kind}-receiver", 1))
            self.pairs[kind].sender.start(sender)
            self.pairs[kind].receiver.start(receiver)
        return self.pairs[kind]

    def endpoint_spec(self, name: str, size: int) -> dict[str, Any]:
        if name == "iceoryx2":
            return {"kind": "iceoryx2", "size": size, "service": f"nngc-bench/{os.getpid()}",
                    "prefix": self.iox_prefix, "root": self.iox_root}  # fmt: skip
        transport = "tcp" if name.startswith("tcp") else "ipc"
        address = "tcp://127.0.0.1:0" if transport == "tcp" else f"ipc://{self.folder}/{name}.ipc"
        shm = name in ("ipc_shm", "ipc_sweep", "tcp_shm")
        threshold = SWEEP_THRESHOLD if name == "ipc_sweep" else _default_threshold()
        return {"kind": "nng", "address": address, "shm": shm, "threshold": threshold,
                "directory": self.segments, "raw": name == "ipc_raw"}  # fmt: skip

    def open(self, variant: Variant, size: int) -> tuple[Pair, str]:
        """The children and endpoint key that carry ``variant`` at ``size`` (opened on first use)."""
        pair = self.pair("iceoryx2" if variant.iceoryx2 else "toolkit")
        key = f"iceoryx2/{size}" if variant.iceoryx2 else variant.endpoint
        if key not in pair.opened:
            spec = self.endpoint_spec(variant.endpoint, size)
            pair.receiver.send("open", key, spec)
            bound = pair.receiver.receive("opened", STEP_TIMEOUT_S)
            if bound is not None:
                spec = {**spec, "address": bound}
            pair.sender.send("open", key, spec)
            pair.sender.receive("opened", STEP_TIMEOUT_S)
            pair.opened.add(key)
        return pair, key

    def deliver(self, variant: Variant, size: int, seed: int) -> dict[str, Any]:
        """One timed delivery; checks what arrived."""
        pair, key = self.open(variant, size)
        pair.sender.send("prepare", key, variant.mode, size, seed, self.segments)
        expected = pair.sender.receive("prepared", STEP_TIMEOUT_S)
        pair.receiver.send("receive", key, variant.event_driven)
        pair.receiver.receive("waiting", STEP_TIMEOUT_S)
        time.sleep(SETTLE_S)
        pair.sender.send("go", key, variant.mode, size, variant.event_driven)
        sent = pair.sender.receive("sent", STEP_TIMEOUT_S)
        if sent["recipients"] != 1:
            raise RuntimeError(f"{variant.key}: the sample reached {sent['recipients']} subscribers, not 1")
        got = pair.receiver.receive("got", STEP_TIMEOUT_S)
        if got["bytes"] != size or got["checksum"] != expected:
            raise RuntimeError(
                f"{variant.key} at {size_label(size)}: received {got['bytes']} bytes, checksum "
                f"{got['checksum']:#x}, expected {size} bytes, {expected:#x}"
            )
        start = sent["start_ns"]
        return {"delivered_ms": (got["delivered_ns"] - start) / 1e6,
                "read_ms": (got["read_ns"] - start) / 1e6, "send_ms": (sent["returned_ns"] - start) / 1e6,
                "kind": got["kind"], "copy_ms": sent.get("copy_ms")}  # fmt: skip

    def drop_iceoryx2(self, reason: str, detail: str) -> None:
        self.iceoryx2_skipped = reason
        self.iceoryx2_error = detail
        pair = self.pairs.pop("iceoryx2", None)
        if pair is not None:
            self.reaped += pair.stop()

    def close(self) -> dict[str, Any]:
        """Reap every child; remove the private folders; report (and remove) what was left behind."""
        for pair in self.pairs.values():
            self.reaped += pair.stop()
        self.pairs.clear()
        segments_left = sorted(p.name for p in Path(self.segments).iterdir())
        owners = {os.getpid(), *self.reaped}
        strays = sorted(
            p.name for p in SHM_ROOT.glob("nngc.*") if p.name.split(".")[1:2] and _pid(p.name) in owners
        )
        for name in strays:
            (SHM_ROOT / name).unlink(missing_ok=True)
        iox_files = sorted(p.name for p in SHM_ROOT.glob(f"{self.iox_prefix}*"))
        for name in iox_files:
            (SHM_ROOT / name).unlink(missing_ok=True)
        for folder in (self.segments, self.folder, self.iox_root):
            shutil.rmtree(folder, ignore_errors=True)
        return {"toolkit_segments_left": segments_left + strays, "iceoryx2_files_removed": iox_files,
                "children_reaped": len(self.reaped)}  # fmt: skip


def _pid(name: str) -> int | None:
    try:
        return int(name.split(".")[1])
    except (IndexError, ValueError):
        return None


def _default_threshold() -> int:
    from patterns.shm.codec import DEFAULT_THRESHOLD

    return int(DEFAULT_THRESHOLD)


# ===================================================================== measuring
def measure(run: Run, phases: list[Phase]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    quick, args = run.args.quick, run.args
    for phase in phases:
        sizes = phase.quick_sizes if quick else phase.sizes
        repeats = args.repeats or (phase.quick_repeats if quick else phase.repeats)
        warmup = phase.warmup if args.warmup is None else args.warmup
        for size in sizes:
            variants = [VARIANT_BY_KEY[k] for k in phase.variants]
            samples: dict[str, list[dict[str, Any]]] = {v.key: [] for v in variants}
            started = time.perf_counter()
            print(f"  {phase.name:<5} {size_label(size):>7}: ", end="", flush=True, file=sys.stderr)
            for r in range(warmup + repeats):
                live = [v for v in variants if not (v.iceoryx2 and run.iceoryx2_skipped)]
                shift = r % max(1, len(live))
                for variant in live[shift:] + live[:shift]:
                    if variant.iceoryx2 and run.iceoryx2_skipped:
                        continue  # it failed earlier in this round
                    try:
                        sample = run.deliver(variant, size, seed=r)
                    except RuntimeError as exc:
                        if not variant.iceoryx2:
                            raise
                        last = [line for line in str(exc).splitlines() if line.strip()][-1]
                        print(f"[iceoryx2 failed: {last}] ", end="", file=sys.stderr)
                        run.drop_iceoryx2(f"failed: {last}", str(exc))
                        continue
                    if r >= warmup:
                        samples[variant.key].append(sample)
                print(".", end="", flush=True, file=sys.stderr)
            print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr)
            for variant in variants:
                if samples[variant.key]:
                    rows.append(summarize_rows(phase.name, variant, size, samples[variant.key]))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser("shm",
                    "One-way delivery of a large payload between two processes: shared memory "
                    "vs ipc/tcp inline vs zero-copy vs iceoryx2, and the threshold sweep.",
                    "64 MiB only (zero-copy 1 and 64 MiB), 3 repeats")  # fmt: skip
    p.add_argument("--repeats", type=int, default=None, help="timed deliveries per row (default per phase)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds per size (default per phase)")
    p.add_argument("--phase", dest="phases", action="append", choices=[ph.name for ph in PHASES],
                   help="run only this phase (repeatable; default: large, flat, sweep)")  # fmt: skip
    p.add_argument("--no-iceoryx2", action="store_true", help="skip the iceoryx2 rows")
    args = p.parse_args(argv)
    if (args.repeats is not None and args.repeats < 1) or (args.warmup is not None and args.warmup < 0):
        p.error("--repeats must be at least 1, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("numpy") is None:
        print("shm: not run: numpy is missing (pip install -e '.[bench]')", file=sys.stderr)
        return 1
    phases = [PHASE_BY_NAME[name] for name in (args.phases or [p.name for p in PHASES])]
    print(f"shm: one-way delivery of large payloads between two processes{' (quick)' if args.quick else ''}",
          file=sys.stderr)  # fmt: skip

    def run_all(machine: dict[str, Any]) -> dict[str, Any]:
        run = Run(args)
        try:
            rows = measure(run, phases)
        finally:
            cleanup = run.close()
        params = {
            "quick": args.quick, "repeats": args.repeats, "warmup": args.warmup,
            "phases": {p.name: {"variants": list(p.variants), "sizes": list(p.quick_sizes if args.quick else p.sizes)}
                       for p in phases},
            "default_threshold": _default_threshold(), "sweep_threshold": SWEEP_THRESHOLD, "settle_s": SETTLE_S,
            "variants": {v.key: {"label": v.label, "description": v.description} for v in VARIANTS},
            "delivered": "from just before send until the receiver holds body['data'] (memoryview or "
                         "bytes) or iceoryx2's memoryview; CLOCK_MONOTONIC in both processes",
            "read": "delivered, then every byte read once (numpy sum of uint64, the verified checksum)",
        }  # fmt: skip
        return {"params": params, "results": rows, "ratios": compute_ratios(rows, quick=args.quick),
                "threshold_sweep": crossover(rows), "iceoryx2_skipped": run.iceoryx2_skipped,
                "iceoryx2_error": run.iceoryx2_error, "cleanup": cleanup,
                "failed": bool(cleanup["toolkit_segments_left"])}  # fmt: skip

    def text(r: dict[str, Any]) -> str:
        return render(r["results"], r["ratios"], r["threshold_sweep"], r["iceoryx2_skipped"], r["cleanup"],
                      _default_threshold())  # fmt: skip

    title = "shm: one-way delivery of one payload between two processes (median of repeats, ms)"
    return _cli.run(args, "shm", title, run_all, text, packages=("numpy", "iceoryx2"))


# ===================================================================== the suite's step
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


def suite_step(quick: bool) -> list[Metric | Skip]:
    """The suite's ``large`` step: 64 MiB (full: also 512 MiB and the zero-copy producer), as Metric rows."""
    if importlib.util.find_spec("numpy") is None:
        return [Skip("large", TOOLKIT, "shared memory vs inline",
                     "numpy not installed: pip install -e '.[bench]'")]  # fmt: skip
    args = parse_args(["--quick"] if quick else [])
    phases = [PHASE_BY_NAME["large"]] + ([] if quick else [PHASE_BY_NAME["flat"]])
    run = Run(args)
    try:
        rows = measure(run, phases)
    finally:
        cleanup = run.close()
    out: list[Metric | Skip] = []
    for row in rows:
        system, variant, transport = LARGE_VARIANTS[row["variant"]]
        size = row["size_bytes"]
        out.append(Metric("large", system, variant, transport, size, 1, "delivered_ms", row["delivered_ms"],
                          "ms"))  # fmt: skip
        if row["delivered_gb_per_s"] is not None:
            out.append(Metric("large", system, variant, transport, size, 1, "gb_per_s",
                              row["delivered_gb_per_s"], "GB/s", higher_is_better=True))  # fmt: skip
        if row["variant"] == "shm" and row.get("memcpy_ms"):  # the floor of a copying send, same run
            out.append(Metric("large", "memcpy", "memcpy (numpy.copyto, sender)", "memory", size, 1,
                              "delivered_ms", row["memcpy_ms"], "ms"))  # fmt: skip
    if run.iceoryx2_skipped:
        reason = run.iceoryx2_skipped
        out.append(Skip("large", "iceoryx2", "loan",
                        reason if "iceoryx2" in reason else f"iceoryx2: {reason}"))  # fmt: skip
    if cleanup["toolkit_segments_left"]:
        left = len(cleanup["toolkit_segments_left"])
        out.append(Skip("large", TOOLKIT, "cleanup",
                        f"{left} shared-memory segments were left behind (removed)"))  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
