"""The reference of ``bench.poll``: a raw pynng survey, which ends only at ``survey_time``.

NNG's surveyor does not know how many respondents exist, so its receive loop runs to
the survey's deadline. Besides that, this records when all N replies were in: the best
NNG can do for a caller who knows N.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pynng

from ._common import summarize
from ._poll_workers import SETUP_TIMEOUT_S, Worker, split_members

RAW_WARMUP_SURVEY_MS = 300


def raw_phase(
    workers: list[Worker], n: int, polls: int, survey_s: float, per_process: int, tmpdir: str
) -> dict[str, Any]:
    """Raw Surveyor0 and N Respondent0 peers: how long the recv loop runs, when all N were in."""
    address = f"ipc://{tmpdir}/raw-{n}"
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    lock = threading.Lock()
    pipes = [0]
    all_connected = threading.Event()

    def connected(_pipe: Any) -> None:
        with lock:
            pipes[0] += 1
            if pipes[0] >= n:
                all_connected.set()

    loop_ms: list[float] = []
    all_in_ms: list[float] = []
    first_ms: list[float] = []
    replies_per_poll: list[int] = []
    started = []
    sock = pynng.Surveyor0(recv_timeout=int((survey_s + 10) * 1000))
    try:
        sock.add_post_pipe_connect_cb(connected)
        sock.listen(address)
        for worker, size in zip(used, sizes):
            worker.send("raw", address, size)
            started.append(worker)
        for worker in used:
            worker.receive("ready", SETUP_TIMEOUT_S)
        if not all_connected.wait(SETUP_TIMEOUT_S):
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
            worker.send("stop")
        for worker in started:
            worker.receive("done", SETUP_TIMEOUT_S)
    return {
        "kind": "raw_pynng",
        "handler": "raw",
        "n": n,
        "processes": len(sizes),
        "members_per_process": sizes,
        "polls": polls,
        "survey_time_s": survey_s,
        "recv_loop": summarize(loop_ms, unit="ms"),
        "all_replies": summarize(all_in_ms, unit="ms") if all_in_ms else None,
        "first_reply": summarize(first_ms, unit="ms") if first_ms else None,
        "replies_per_poll": replies_per_poll,
        "polls_missing": sum(1 for r in replies_per_poll if r < n),
        "members_missing": sum(max(0, n - r) for r in replies_per_poll),
    }
