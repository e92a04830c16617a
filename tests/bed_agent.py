"""The far ends of the multi-host tests (``tests/test_hosts.py``), each run on a host of the bed.

    python tests/bed_agent.py dispatch ADDRESS --tasks N [--sleep S] [--lease L] [--claim-timeout C]
                                  [--workers W] [--secret-env]
    python tests/bed_agent.py ask ADDRESS [--heartbeat S]
    python tests/bed_agent.py pair-listen ADDRESS
    python tests/bed_agent.py pair-send ADDRESS MIB
    python tests/bed_agent.py discover -

``dispatch`` runs a :class:`consensus.Dispatcher`, prints ``workers`` once W workers are in,
then on a ``go`` line distributes N tasks ``{"n": i, "sleep": S}`` and prints
``outcome <n> <ok> <worker> <attempts>`` for each, then ``finished <json counters>``
(workers lost and silent, stale replies, attempts redelivered); told ``workers N``, it
waits until N workers are in and prints ``workers <json names, joined, stale>``. With ``--secret-env`` the
dispatcher has the secret in ``NNGC_SECRET``.
``ask`` dials a hotline and reads commands: ``ask <json>`` (one ask, 1 s) prints ``answer
<json>`` or ``error <ExceptionType>``; ``until-answered <json>`` asks every 0.2 s until one
is answered (prints ``answer <json> after <n> failed``). ``pair-listen`` receives one value
on a ``patterns.Pair``, prints ``got <length> <blake2b hex> <bytes received>`` and replies 8
bytes; ``pair-send`` sends MIB mebibytes of a pattern and prints ``sent <bytes sent>`` when
the reply is in. ``discover`` prints ``rooms <json [[name, address, secret, tls], ...]>``
each time it is told ``discover`` (the rooms advertised on the LAN). Every mode prints ``ready`` when set up; ``quit`` (or end of input) leaves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say, wait_for_quit

import consensus
import patterns


async def lines() -> Any:
    while text := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
        command, _, rest = text.strip().partition(" ")
        if command == "quit":
            return
        yield command, rest


async def dispatch(args: argparse.Namespace) -> None:
    secret = consensus.Secret.from_env() if args.secret_env else None
    async with consensus.Dispatcher(args.address, secret=secret) as dispatcher:
        say("ready")
        await dispatcher.wait_for_workers(args.workers)
        say("workers")
        async for command, rest in lines():
            if command == "workers":  # wait until that many are in again, then say who
                names = await dispatcher.wait_for_workers(int(rest))
                stats = dispatcher.statistics()
                say("workers", json.dumps({"names": list(names), "joined": stats.workers_joined,
                                           "stale": stats.stale_replies}))  # fmt: skip
                continue
            if command != "go":
                continue
            tasks = [{"n": n, "sleep": args.sleep} for n in range(args.tasks)]
            claim_timeout = args.lease if args.claim_timeout is None else args.claim_timeout
            async with dispatcher.distribute(tasks, lease=args.lease, claim_timeout=claim_timeout) as outcomes:
                async for outcome in outcomes:
                    say("outcome", outcome.task["n"], outcome.ok, outcome.worker, outcome.attempts)
                redelivered = outcomes.statistics().redelivered
            stats = dispatcher.statistics()
            say("finished", json.dumps({"lost": stats.workers_lost, "silent": stats.workers_silent,
                                        "stale": stats.stale_replies, "redelivered": redelivered,
                                        "unauthenticated": stats.unauthenticated}))  # fmt: skip


async def ask(args: argparse.Namespace) -> None:
    async with consensus.hotline(dial=args.address, name="asker", heartbeat=args.heartbeat) as line:
        await line.wait_connected()
        say("ready")
        async for command, rest in lines():
            value = json.loads(rest)
            if command == "ask":
                try:
                    say("answer", json.dumps(await line.ask(value, timeout=1.0)))
                except consensus.ConsensusError as exc:
                    say("error", type(exc).__name__)
            elif command == "until-answered":
                failed = 0
                while True:
                    try:
                        answer = await line.ask(value, timeout=1.0)
                        break
                    except consensus.ConsensusError:
                        failed += 1
                        await trio.sleep(0.2)
                say("answer", json.dumps(answer), "after", failed, "failed")


async def pair_listen(args: argparse.Namespace) -> None:
    async with patterns.Pair(listen=args.address, max_message_size=1 << 30) as pair:
        say("ready")
        value = await pair.receive()
        data = memoryview(value)
        digest = hashlib.blake2b(data).hexdigest()
        say("got", len(data), digest, pair.statistics().bytes_received)
        await pair.send(b"received")
        await wait_for_quit()


async def pair_send(args: argparse.Namespace) -> None:
    async with patterns.Pair(dial=args.address, max_message_size=1 << 30) as pair:
        await pair.wait_for_peers(1)
        say("ready")
        payload = pattern(args.mib << 20)
        say("digest", hashlib.blake2b(payload).hexdigest())
        await pair.send(payload)
        await pair.receive()
        say("sent", pair.statistics().bytes_sent)
        await wait_for_quit()


async def discover(args: argparse.Namespace) -> None:
    say("ready")
    async for command, _ in lines():
        if command == "discover":
            rooms = await consensus.discover(timeout=1.0)
            say("rooms", json.dumps([[r.name, r.address, r.secret, r.tls] for r in rooms]))


def pattern(size: int) -> bytes:
    """``size`` bytes that are not all alike (a dropped or shifted chunk changes the digest)."""
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (size // len(block) + 1))[:size]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["dispatch", "ask", "pair-listen", "pair-send", "discover"])
    parser.add_argument("address")
    parser.add_argument("mib", nargs="?", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--lease", type=float, default=1.5)
    parser.add_argument("--claim-timeout", type=float, default=None, help="default: the lease")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--secret-env", action="store_true", help="the secret in NNGC_SECRET")
    parser.add_argument("--heartbeat", type=float, default=0.5)
    arguments = parser.parse_args()
    run = {
        "dispatch": dispatch,
        "ask": ask,
        "pair-listen": pair_listen,
        "pair-send": pair_send,
        "discover": discover,
    }
    trio.run(run[arguments.mode], arguments)
