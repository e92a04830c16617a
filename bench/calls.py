"""Python calls per message, by layer: what noise on a shared machine does not move.

Each scenario runs its two ends in two processes (the far end spawned), warms up, then
counts every function call in each process with ``sys.setprofile`` over ``--n`` messages:
Python calls by the file of the function called, C calls (builtins, cffi, methods of
built-in types) by the file of the Python code that made them. The layers are
``patterns``, ``consensus``, ``trio``, ``pynng`` (pynng and cffi's Python) and ``other``
(the standard library, the bench). Timing under the profiler means nothing; the counts do.

Scenarios (``--scenario``, repeatable; default: all):

* ``pair``: ``patterns.Pair`` 64-byte CBOR round trip (``send`` then ``receive``; the echo
  ``receive`` then ``send``); ``floor``: the same with bare pynng ``Pair1`` under trio
  (non-blocking ``recv``, ``wait_readable`` on its descriptor, ``send`` inline).
* ``hotline``: ``Hotline.ask`` of 64 bytes answered by an ``async def`` echo.
* ``survey``: ``patterns.Surveyor`` against 8 ``patterns.Respondent`` (one process, a task each),
  reading until the 8th reply; ``survey_floor``: the same with bare pynng ``Surveyor0`` and
  ``Respondent0`` under trio; ``poll``: ``room.poll`` of 8 members that answer at once.
  The far end's figures are per survey, for its 8 respondents together.

    python -m bench.calls                    # every scenario, ipc, n=200
    python -m bench.calls --scenario hotline --transport tcp --top 15
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pynng
import trio

import consensus
import patterns

SCENARIOS = ("floor", "pair", "hotline", "survey_floor", "survey", "poll")
MEMBERS = 8
PAYLOAD = (bytes(range(256)) * 1)[:64]
LAYERS = (("/patterns/", "patterns"), ("/consensus/", "consensus"), ("/trio/", "trio"), ("/pynng/", "pynng"),
          ("/cffi/", "pynng"))  # fmt: skip


def _layer(filename: str) -> str:
    for part, name in LAYERS:
        if part in filename:
            return name
    return "other"


class Counter:
    """Counts calls in this thread while on (``sys.setprofile``)."""

    def __init__(self) -> None:
        self.python: collections.Counter[str] = collections.Counter()
        self.c: collections.Counter[str] = collections.Counter()
        self.functions: collections.Counter[str] = collections.Counter()
        self._layers: dict[str, str] = {}
        self.active = False
        self.save: Callable[[], None] | None = None  # called once counting ends (a far end writes its report)

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            layer = self._layers.get(code.co_filename)
            if layer is None:
                layer = self._layers[code.co_filename] = _layer(code.co_filename)
            self.python[layer] += 1
            self.functions[f"{layer} {os.path.basename(code.co_filename)}:{code.co_name}"] += 1
        elif event == "c_call":
            code = frame.f_code
            layer = self._layers.get(code.co_filename)
            if layer is None:
                layer = self._layers[code.co_filename] = _layer(code.co_filename)
            self.c[layer] += 1
            self.functions[f"{layer} C {getattr(arg, '__qualname__', arg)}"] += 1

    def on(self) -> None:
        self.active = True
        sys.setprofile(self._hook)

    def off(self) -> None:
        sys.setprofile(None)
        if self.active and self.save is not None:
            self.save()
        self.active = False

    def report(self, messages: int, top: int) -> dict[str, Any]:
        return {"python": {k: round(v / messages, 1) for k, v in sorted(self.python.items())},
                "c": {k: round(v / messages, 1) for k, v in sorted(self.c.items())},
                "python_total": round(sum(self.python.values()) / messages, 1),
                "c_total": round(sum(self.c.values()) / messages, 1),
                "top": [(name, round(n / messages, 2)) for name, n in self.functions.most_common(top)]}  # fmt: skip


# ===================================================================== far ends (child processes)
async def _far_floor(address: str, warmup: int, n: int, counter: Counter) -> None:
    with pynng.Pair1() as sock:
        sock.dial(address, block=True)
        fd, seen = sock.recv_fd, 0
        while True:
            try:
                data = sock.recv(block=False)
            except pynng.TryAgain:
                await trio.lowlevel.wait_readable(fd)
                continue
            if data == b"stop":
                return
            seen += 1
            if seen == warmup + 1:
                counter.on()
            sock.send(data)
            if seen == warmup + n:
                counter.off()


async def _far_pair(address: str, warmup: int, n: int, counter: Counter) -> None:
    async with patterns.Pair(dial=address) as line:
        seen = 0
        while (value := await line.receive()) is not None:
            seen += 1
            if seen == warmup + 1:
                counter.on()
            await line.send(value)
            if seen == warmup + n:
                counter.off()


async def _far_hotline(address: str, warmup: int, n: int, counter: Counter) -> None:
    seen = [0]

    async def echo(value: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup + 1:
            counter.on()
        elif seen[0] == warmup + n + 1:
            counter.off()
        return value

    async with consensus.hotline(dial=address, name="echo", on_ask=echo) as line:
        while await line.receive() != "stop":
            pass
    counter.off()


async def _far_survey_floor(address: str, warmup: int, n: int, counter: Counter) -> None:
    seen = [0]

    async def one(sock: Any, first: bool) -> None:
        fd = sock.recv_fd
        while True:
            try:
                question = sock.recv(block=False)
            except pynng.TryAgain:
                await trio.lowlevel.wait_readable(fd)
                continue
            if first:
                seen[0] += 1
                if seen[0] == warmup + 1:
                    counter.on()
                elif seen[0] == warmup + n + 1:
                    counter.off()
            sock.send(question)

    socks = [pynng.Respondent0() for _ in range(MEMBERS)]
    async with trio.open_nursery() as nursery:
        for i, sock in enumerate(socks):
            sock.dial(address, block=False)
            nursery.start_soon(one, sock, i == 0)


async def _far_survey(address: str, warmup: int, n: int, counter: Counter) -> None:
    seen = [0]

    async def one(resp: patterns.Respondent, first: bool) -> None:
        async for survey in resp:
            if first:
                seen[0] += 1
                if seen[0] == warmup + 1:
                    counter.on()
                elif seen[0] == warmup + n + 1:
                    counter.off()
            await survey.reply(survey.body)

    async with trio.open_nursery() as nursery:
        for i in range(MEMBERS):
            resp = patterns.Respondent(dial=address, name=f"r{i}")
            await resp.__aenter__()
            nursery.start_soon(one, resp, i == 0)
        await trio.sleep(3600)


async def _far_poll(address: str, warmup: int, n: int, counter: Counter) -> None:
    seen = [0]

    async def on_poll(question: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup * MEMBERS + 1:
            counter.on()
        elif seen[0] == (warmup + n) * MEMBERS + 1:
            counter.off()
        return question

    async def one(name: str) -> None:
        async with consensus.join(address, name=name, on_poll=on_poll, join_timeout=30):
            await trio.sleep(3600)

    async with trio.open_nursery() as nursery:
        for i in range(MEMBERS):
            nursery.start_soon(one, f"m{i}")


FAR: dict[str, Callable[..., Any]] = {"floor": _far_floor, "pair": _far_pair, "hotline": _far_hotline,
                                      "survey_floor": _far_survey_floor, "survey": _far_survey,
                                      "poll": _far_poll}  # fmt: skip


def far_main(scenario: str, address: str, warmup: int, n: int, top: int, out: str) -> None:
    counter = Counter()

    def save() -> None:
        with open(out, "w") as f:
            json.dump(counter.report(n, top), f)

    counter.save = save

    async def run() -> None:
        with trio.move_on_after(120):
            await FAR[scenario](address, warmup, n, counter)

    try:
        trio.run(run)
    except BaseException:  # the near end closing the room ends the members: expected
        if not os.path.exists(out):
            raise


# ===================================================================== near ends (this process)
async def _near_floor(address: str, warmup: int, n: int, counter: Counter) -> None:
    with pynng.Pair1() as sock:
        sock.listen(address)
        fd = sock.recv_fd
        for i in range(warmup + n):
            if i == warmup:
                counter.on()
            sock.send(PAYLOAD)
            while True:
                try:
                    sock.recv(block=False)
                    break
                except pynng.TryAgain:
                    await trio.lowlevel.wait_readable(fd)
        counter.off()
        sock.send(b"stop")


async def _near_pair(address: str, warmup: int, n: int, counter: Counter) -> None:
    async with patterns.Pair(listen=address) as line:
        await line.wait_for_peers()
        for i in range(warmup + n):
            if i == warmup:
                counter.on()
            await line.send(PAYLOAD)
            await line.receive()
        counter.off()
        await line.send(None)
        await trio.sleep(0.2)


async def _near_hotline(address: str, warmup: int, n: int, counter: Counter) -> None:
    async with consensus.hotline(listen=address, name="asker") as line:
        await line.wait_connected()
        for i in range(warmup + n + 1):  # one more ask: the far end stops counting when it sees it
            if i == warmup:
                counter.on()
            await line.ask(PAYLOAD, timeout=5)
            if i == warmup + n - 1:
                counter.off()
        await line.send("stop")
        await trio.sleep(0.2)


async def _near_survey_floor(address: str, warmup: int, n: int, counter: Counter) -> None:
    pipes = [0]
    with pynng.Surveyor0(survey_time=5000) as sock:
        sock.add_post_pipe_connect_cb(lambda _pipe: pipes.__setitem__(0, pipes[0] + 1))
        sock.listen(address)
        while pipes[0] < MEMBERS:
            await trio.sleep(0.01)
        await trio.sleep(0.3)
        fd = sock.recv_fd
        for i in range(warmup + n + 1):
            if i == warmup:
                counter.on()
            sock.send(b"q%d" % i)
            for _ in range(MEMBERS):
                while True:
                    try:
                        sock.recv(block=False)
                        break
                    except pynng.TryAgain:
                        await trio.lowlevel.wait_readable(fd)
            if i == warmup + n - 1:
                counter.off()  # one more survey: the far end stops counting when it sees it


async def _near_survey(address: str, warmup: int, n: int, counter: Counter) -> None:
    async with patterns.Surveyor(listen=address, name="boss") as boss:
        await boss.wait_for_peers(MEMBERS)
        await trio.sleep(0.3)
        for i in range(warmup + n + 1):
            if i == warmup:
                counter.on()
            replies = await boss.survey(i, timeout=5)
            got = replies.take()
            while len(got) < MEMBERS:
                await replies.wait()
                got += replies.take()
            replies.close()
            if i == warmup + n - 1:
                counter.off()  # one more survey: the far end stops counting when it sees it


async def _near_poll(address: str, warmup: int, n: int, counter: Counter) -> None:
    async with consensus.host(address) as room:
        await room.wait_for_members(MEMBERS)
        await trio.sleep(0.5)
        for i in range(warmup + n + 1):  # one more poll: the far end stops counting when it sees it
            if i == warmup:
                counter.on()
            result = await room.poll(i, timeout=5)
            assert len(result.answers) == MEMBERS, result
            if i == warmup + n - 1:
                counter.off()
        await trio.sleep(0.3)


NEAR: dict[str, Callable[..., Any]] = {"floor": _near_floor, "pair": _near_pair, "hotline": _near_hotline,
                                       "survey_floor": _near_survey_floor, "survey": _near_survey,
                                       "poll": _near_poll}  # fmt: skip


def run_scenario(scenario: str, transport: str, warmup: int, n: int, top: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="calls-") as tmp:
        if transport == "ipc":
            address = f"ipc://{tmp}/s"
        else:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            address = f"tcp://127.0.0.1:{port}"
        out = os.path.join(tmp, "far.json")
        near_counter = Counter()

        async def near() -> None:
            await NEAR[scenario](address, warmup, n, near_counter)

        child = subprocess.Popen([sys.executable, "-m", "bench.calls", "--far", scenario, address, str(warmup),
                                  str(n), str(top), out])  # fmt: skip
        try:
            trio.run(near)
            if scenario in ("survey_floor", "survey", "poll"):
                time.sleep(0.5)
                child.terminate()
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        with open(out) as f:
            far = json.load(f)
        return {"scenario": scenario, "transport": transport, "n": n, "near": near_counter.report(n, top),
                "far": far}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    lines = [f"{result['scenario']} over {result['transport']}, per message (n={result['n']}):"]
    for side in ("near", "far"):
        r = result[side]
        lines.append(f"  {side}: python {r['python_total']} {r['python']}  C {r['c_total']} {r['c']}")
        for name, count in r["top"]:
            lines.append(f"      {count:7.2f}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--far"]:
        far_main(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", action="append", choices=SCENARIOS)
    p.add_argument("--transport", default="ipc", choices=("ipc", "tcp"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--top", type=int, default=0, help="also list the N most called functions per side")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    results = []
    for scenario in args.scenario or SCENARIOS:
        result = run_scenario(scenario, args.transport, args.warmup, args.n, args.top)
        print(render(result), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
