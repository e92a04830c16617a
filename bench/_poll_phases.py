"""The phases of ``bench.poll``: a room poll of N members in child processes, and the raw survey.

The member processes are :class:`~bench._children.Child` processes running one job per
phase, from :mod:`bench._poll_members`.

NNG's raw surveyor does not know how many respondents exist, so its receive loop runs
to the survey's deadline; :func:`raw_phase` also records when all N replies were in:
the best NNG can do for a caller who knows N.

:func:`floor_phase` is the floor of any trio + NNG program for the same poll: a bare
raw ``pynng.Surveyor0`` under trio that knows N, against N bare ``pynng.Respondent0`` tasks
under trio in the member processes (:func:`~bench._poll_members.floor_respondents`), both sides receiving with
``recv(block=False)`` and ``trio.lowlevel.wait_readable`` on the receive descriptor,
sending inline, nothing else (no envelope, no roster, no heartbeats). The surveyor is raw
(it writes NNG's 4-byte survey id before the question itself) because a cooked one's
``recv(block=False)`` blocks until the next reply: the loop never reached trio, which made
the floor a blocking loop no readiness-driven program matches (the toolkit's surveyor is
raw for the same reason).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pynng
import trio

import consensus
import patterns

from ._children import Child
from ._common import median, summarize
from ._poll_members import (
    JOIN_TIMEOUT_S,
    SETTLE_S,
    floor_respondents,
    members,
    pattern_respondents,
    respondents,
    room_address,
    split_members,
)

__all__ = ["floor_phase", "pattern_phase", "poll_phase", "raw_phase"]

RAW_WARMUP_SURVEY_MS = 300
FLOOR_SURVEY_S = 5.0  # the floor surveyor's survey time: every reply arrives long before it


# ===================================================================== the consensus phase (here)
async def poll_phase(workers: list[Child], n: int, handler: str, polls: int, warmup: int, timeout: float,
                     per_process: int, tmpdir: str, transport: str = "ipc", *,
                     abort_after_join: bool = False) -> dict[str, Any]:  # fmt: skip
    """One fresh room with N members of one handler style: warm up, then time ``polls`` polls.
    ``abort_after_join`` (tests): abort this process once the members are in, as an NNG panic does."""
    address = room_address(transport, tmpdir, f"room-{handler}-{n}")
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    names = iter(f"m{i:03d}" for i in range(n))
    samples: dict[str, list[float]] = {"wall_ms": [], "elapsed_ms": [], "first_ms": [], "last_ms": []}
    bad = {"polls_missing": 0, "members_missing": 0, "errors": 0, "wrong_answers": 0}
    started: list[Child] = []
    ready: list[Child] = []
    async with consensus.host(address) as room:
        try:
            for worker, size in zip(used, sizes):
                worker.start(members, address, [next(names) for _ in range(size)], handler)
                started.append(worker)
            with trio.fail_after(JOIN_TIMEOUT_S * 2):
                await room.wait_for_members(n)
            for worker in used:
                await worker.areceive("ready")
                ready.append(worker)
            if len(room.members) != n:
                raise RuntimeError(f"expected {n} members, the room has {len(room.members)}")
            if abort_after_join:
                print("panic: injected (abort_after_join)", file=sys.stderr, flush=True)
                os.abort()
            await trio.sleep(SETTLE_S)
            for i in range(warmup):
                await room.poll(-1 - i, timeout=timeout)
            for worker in used:
                worker.send("mark")
            worker_cpu0 = [await w.areceive("mark") for w in used]
            stats0 = room.statistics()
            host_cpu0 = time.process_time()
            clock = time.perf_counter
            for i in range(polls):
                t0 = clock()
                result = await room.poll(i, timeout=timeout)
                t1 = clock()
                samples["wall_ms"].append((t1 - t0) * 1e3)
                samples["elapsed_ms"].append(result.elapsed * 1e3)
                if result.latencies:
                    samples["first_ms"].append(min(result.latencies.values()) * 1e3)
                    samples["last_ms"].append(max(result.latencies.values()) * 1e3)
                if result.missing or len(result.answers) != n:
                    bad["polls_missing"] += 1
                    bad["members_missing"] += max(len(result.missing), n - len(result.answers))
                bad["errors"] += len(result.errors)
                bad["wrong_answers"] += sum(1 for answer in result.answers.values() if answer != i)
            host_cpu = time.process_time() - host_cpu0
            stats1 = room.statistics()
            for worker in used:
                worker.send("mark")
            worker_cpu = sum([await w.areceive("mark") for w in used]) - sum(worker_cpu0)
        finally:
            for worker in started:
                worker.send("stop")
            for worker in started:  # (interrupted while members joined: their "ready" comes first)
                if worker not in ready:
                    await worker.areceive("ready")
            member_stats = [await worker.areceive("done") for worker in started]
    answered = sum(s["polls_answered"] for s in member_stats)
    if answered < (warmup + polls) * n:
        print(f"warning: N={n} {handler}: members answered {answered} of "
              f"{(warmup + polls) * n} polls", file=sys.stderr)  # fmt: skip
    optional = {key: summarize(samples[key], unit="ms") if samples[key] else None
                for key in ("first_ms", "last_ms")}  # fmt: skip
    return {"kind": "consensus", "handler": handler, "transport": transport, "n": n,
            "processes": len(sizes), "members_per_process": sizes, "polls": polls,
            "warmup": warmup, "wall": summarize(samples["wall_ms"], unit="ms"),
            "elapsed": summarize(samples["elapsed_ms"], unit="ms"),
            "first_answer": optional["first_ms"], "last_answer": optional["last_ms"],
            "per_member_ms": round(median(samples["wall_ms"]) / n, 4),
            "host_cpu_ms_per_poll": round(host_cpu * 1e3 / polls, 3),
            "members_cpu_ms_per_poll": round(worker_cpu * 1e3 / polls, 3), **bad,
            "late_replies": stats1.late_replies - stats0.late_replies,
            "rejected_replies": stats1.rejected_replies - stats0.rejected_replies,
            "malformed": stats1.malformed - stats0.malformed, "member_polls_answered": answered,
            "member_handler_errors": sum(s["handler_errors"] for s in member_stats),
            "samples_wall_ms": [round(v, 4) for v in samples["wall_ms"]]}  # fmt: skip


# ===================================================================== the raw reference (here)
def raw_phase(workers: list[Child], n: int, polls: int, survey_s: float, per_process: int,
              tmpdir: str) -> dict[str, Any]:  # fmt: skip
    """Raw Surveyor0 and N Respondent0 peers: how long the recv loop runs, when all N were in."""
    address = f"ipc://{tmpdir}/raw-{n}"
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    lock, pipes, all_connected = threading.Lock(), [0], threading.Event()

    def connected(_pipe: Any) -> None:
        with lock:
            pipes[0] += 1
            if pipes[0] >= n:
                all_connected.set()

    loop_ms: list[float] = []
    all_in_ms: list[float] = []
    first_ms: list[float] = []
    replies_per_poll: list[int] = []
    started: list[Child] = []
    sock = pynng.Surveyor0(recv_timeout=int((survey_s + 10) * 1000))
    try:
        sock.add_post_pipe_connect_cb(connected)
        sock.listen(address)
        for worker, size in zip(used, sizes):
            worker.start(respondents, address, size)
            started.append(worker)
        for worker in used:
            worker.receive("ready")
        if not all_connected.wait(JOIN_TIMEOUT_S):
            raise RuntimeError(f"raw reference: only {pipes[0]} of {n} respondents connected")

        def one_survey(payload: bytes) -> tuple[float, list[float]]:
            arrivals = []
            t0 = time.perf_counter()
            sock.send(payload)
            while True:
                try:
                    reply = sock.recv()
                except pynng.Timeout:
                    break
                arrivals.append(time.perf_counter() - t0)
                if reply != payload:
                    raise RuntimeError(f"raw reference: reply {reply!r} to survey {payload!r}")
            return time.perf_counter() - t0, arrivals

        sock.survey_time = RAW_WARMUP_SURVEY_MS  # warm-up: every path used once
        one_survey(b"warmup")
        sock.survey_time = int(survey_s * 1000)
        for i in range(polls):
            ended, arrivals = one_survey(b"q%d" % i)
            loop_ms.append(ended * 1e3)
            replies_per_poll.append(len(arrivals))
            if len(arrivals) >= n:
                all_in_ms.append(arrivals[n - 1] * 1e3)
            if arrivals:
                first_ms.append(arrivals[0] * 1e3)
    finally:
        sock.close()
        for worker in started:
            worker.finish()
    return {
        "kind": "raw_pynng", "handler": "raw", "n": n, "processes": len(sizes), "members_per_process": sizes,
        "polls": polls, "survey_time_s": survey_s, "recv_loop": summarize(loop_ms, unit="ms"),
        "all_replies": summarize(all_in_ms, unit="ms") if all_in_ms else None,
        "first_reply": summarize(first_ms, unit="ms") if first_ms else None, "replies_per_poll": replies_per_poll,
        "polls_missing": sum(1 for r in replies_per_poll if r < n),
        "members_missing": sum(max(0, n - r) for r in replies_per_poll),
    }  # fmt: skip


# ===================================================================== the floor of trio + NNG (here)
async def floor_phase(workers: list[Child], n: int, polls: int, warmup: int, per_process: int, tmpdir: str,
                      transport: str = "ipc") -> dict[str, Any]:  # fmt: skip
    """A bare trio + pynng surveyor that knows N: time from its send to the N-th reply."""
    address = room_address(transport, tmpdir, f"floor-{n}")
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    pipes = [0]
    all_in_ms: list[float] = []
    started: list[Child] = []
    sock = pynng.Surveyor0(opener=pynng.lib.nng_surveyor0_open_raw)  # module docstring: why raw
    try:
        sock.add_post_pipe_connect_cb(lambda _pipe: pipes.__setitem__(0, pipes[0] + 1))
        sock.listen(address)
        for worker, size in zip(used, sizes):
            worker.start(floor_respondents, address, size)
            started.append(worker)
        for worker in used:
            await worker.areceive("ready")
        with trio.fail_after(JOIN_TIMEOUT_S):
            while pipes[0] < n:
                await trio.sleep(0.01)
        fd, wait, again = sock.recv_fd, trio.lowlevel.wait_readable, pynng.TryAgain
        clock = time.perf_counter
        with trio.fail_after(FLOOR_SURVEY_S * (warmup + polls)):
            for i in range(-warmup, polls):
                question = b"q%d" % i
                header = (0x8000_0000 | (i + warmup + 1)).to_bytes(4, "big")  # NNG's survey id, high bit set
                t0 = clock()
                sock.send(header + question)
                for _ in range(n):
                    while True:
                        try:
                            reply = sock.recv(block=False)
                            break
                        except again:
                            await wait(fd)
                    if reply != question:
                        raise RuntimeError(f"floor: reply {reply!r} to survey {question!r}")
                t1 = clock()
                if i >= 0:
                    all_in_ms.append((t1 - t0) * 1e3)
    finally:
        sock.close()
        for worker in started:
            worker.send("stop")
        for worker in started:
            await worker.areceive("done")
    return {"kind": "floor", "handler": "floor", "transport": transport, "n": n, "processes": len(sizes),
            "members_per_process": sizes, "polls": polls, "all_replies": summarize(all_in_ms, unit="ms"),
            "polls_missing": 0, "members_missing": 0}  # fmt: skip


# ===================================================================== the pattern layer alone (here)
async def pattern_phase(workers: list[Child], n: int, polls: int, warmup: int, per_process: int, tmpdir: str,
                        transport: str = "ipc") -> dict[str, Any]:  # fmt: skip
    """``patterns.Surveyor`` against N ``patterns.Respondent`` (envelopes, no room), reading until N
    replies: between the floor and ``room.poll``, it says which layer the time goes to."""
    address = room_address(transport, tmpdir, f"pattern-{n}")
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    all_in_ms: list[float] = []
    started: list[Child] = []
    try:
        async with patterns.Surveyor(listen=address, name="bench") as boss:
            for worker, size in zip(used, sizes):
                worker.start(pattern_respondents, address, size)
                started.append(worker)
            for worker in used:
                await worker.areceive("ready")
            with trio.fail_after(JOIN_TIMEOUT_S):
                await boss.wait_for_peers(n)
            clock = time.perf_counter
            with trio.fail_after(FLOOR_SURVEY_S * (warmup + polls)):
                for i in range(-warmup, polls):
                    t0 = clock()
                    replies = await boss.survey(i, timeout=FLOOR_SURVEY_S)
                    got = replies.take()
                    while len(got) < n:
                        await replies.wait()
                        got += replies.take()
                    replies.close()
                    t1 = clock()
                    if any(reply.body != i for reply in got):
                        raise RuntimeError(f"pattern: a reply to survey {i} was not its question")
                    if i >= 0:
                        all_in_ms.append((t1 - t0) * 1e3)
    finally:
        for worker in started:
            worker.send("stop")
        for worker in started:
            await worker.areceive("done")
    return {"kind": "pattern", "handler": "pattern", "transport": transport, "n": n, "processes": len(sizes),
            "members_per_process": sizes, "polls": polls, "all_replies": summarize(all_in_ms, unit="ms"),
            "polls_missing": 0, "members_missing": 0}  # fmt: skip
