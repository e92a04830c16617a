"""A simulated agent process for the room tests.

    python tests/room_agent.py ADDRESS NAME [--answer JSON] [--delay S] [--choice JSON]
                               [--confidence C] [--fail] [--handler-timeout S]

Prints one line per event: ``joined``, ``refused <reason>``, ``unavailable``,
``message <sender> <json>``, ``decision <json outcome>``, ``closed`` (the room ended
under it: RoomClosed). Reads commands on stdin:
``say <json>`` broadcasts a value, ``mesh`` waits for a full mesh (then prints
``mesh ok``), ``poll <json question>`` asks the host to run a poll (prints
``polled <json answers> <json missing>`` or ``call-refused <reason>``), ``vote <json
[motion, options, rule-or-null]>`` asks for a vote (prints ``voted <json outcome>``),
``quit`` leaves the room cleanly. With ``--secret-env`` it joins with the secret in
``NNGC_SECRET`` (printing ``unauthenticated <reason>`` if the host does not share it).
With ``--tls DIR`` it joins a ``tls+tcp`` room trusting ``DIR/ca.pem`` (server name
``localhost``), its own certificate and key in ``DIR/NAME.pem``.
With ``--stance S`` it also deliberates (prints
``deliberate <round> <json labels shown>``): it holds S, adopts ``--persuadable P`` once
another member shows P (crediting that label), and with ``--crash-round N`` dies when
asked round N; with ``--hold-round N`` it waits in round N for a ``release`` line on
stdin; with ``--stall-round N`` it never answers round N; with ``--garbage handler`` its
handler returns a map that is no position, with ``--garbage wire`` it sends a ``position``
whose body is no position, with ``--garbage kind`` an ``answer`` instead of a position
(the last two written past the member's own checks). With ``--ask`` it answers the host's
``room.ask`` with ``{"name", "value"}`` (printing ``asked <json>``) and dies on ``"crash"``.
With ``--drop-roster-with NAME`` it loses the first roster listing NAME (printing ``dropped
roster <version>``); with ``--members-events`` it prints ``members <json names>`` at each change;
with ``--no-roster-version`` its heartbeats name no roster version (an older implementation).
With ``--host-events`` it prints ``host lost`` and
``host back``; with ``--log``, the ``consensus`` log as ``log <message>`` lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say

import consensus
from consensus.decide.rule_wire import rule_from_wire


async def main(args: argparse.Namespace) -> None:
    async def on_poll(question: Any) -> Any:
        await trio.sleep(args.delay)
        if args.fail:
            raise RuntimeError(f"{args.name} cannot answer {question!r}")
        return (
            json.loads(args.answer) if args.answer is not None else {"name": args.name, "question": question}
        )

    async def on_vote(motion: Any, options: list[Any]) -> Any:
        await trio.sleep(args.delay)
        if args.fail:
            raise RuntimeError(f"{args.name} refuses to vote on {motion!r}")
        choice = json.loads(args.choice) if args.choice is not None else options[0]
        return consensus.Ballot(choice, confidence=args.confidence, reason=f"{args.name} thinks so")

    held = args.stance
    released = trio.Event()

    async def on_deliberate(question: Any, number: int, others: Any, options: Any) -> Any:
        nonlocal held
        say("deliberate", number, json.dumps([seen.label for seen in others], separators=(",", ":")))
        if number == args.crash_round:
            os._exit(3)  # a crash mid-round: no reply, the connection drops
        if number == args.hold_round:
            await released.wait()
        if number == args.stall_round:
            await trio.sleep_forever()  # past the round's deadline: the member says Timeout, late
        if args.garbage == "handler":
            return {"stance": 42, "mood": "contrarian"}
        await trio.sleep(args.delay)
        convincing = [seen.label for seen in others if seen.position.stance == args.persuadable]
        if convincing and held != args.persuadable:
            held = args.persuadable
            return consensus.Position(held, reason=f"{convincing[0]} convinced me", persuaded_by=tuple(convincing[:1]))
        return consensus.Position(held, reason=args.reason or f"{args.name} holds {held}")

    def on_ask(value: Any) -> Any:
        say("asked", json.dumps(value))
        if value == "crash":
            os._exit(3)  # dies while answering the host's ask
        return {"name": args.name, "value": value}

    try:
        async with consensus.join(
            args.address, name=args.name, on_poll=on_poll, on_vote=on_vote, on_ask=on_ask if args.ask else None,
            on_deliberate=on_deliberate if args.stance is not None else None,
            handler_timeout=args.handler_timeout, join_timeout=args.join_timeout, observer=args.observer,
            host_timeout=args.host_timeout, on_host_lost=args.on_host_lost,
            secret=consensus.Secret.from_env() if args.secret_env else None, tls=client_tls(args),
        ) as member:  # fmt: skip
            if args.garbage in ("wire", "kind"):
                garble(member, args.garbage)
            if args.drop_roster_with is not None:
                drop_roster(member, args.drop_roster_with)
            if args.no_roster_version:
                unversioned(member)
            say("joined")
            async with trio.open_nursery() as nursery:

                async def messages() -> None:
                    async for sender, value in member.messages():
                        say("message", sender, json.dumps(value))

                async def decisions() -> None:
                    async for decision in member.decisions():
                        say("decision", json.dumps(decision.outcome))

                async def host_changes() -> None:
                    while True:
                        say("host", "back" if await member.wait_host_changed() else "lost")

                async def members() -> None:
                    while True:
                        say("members", json.dumps(sorted(await member.wait_members_changed()), separators=(",", ":")))

                nursery.start_soon(messages)
                nursery.start_soon(decisions)
                if args.members_events:
                    nursery.start_soon(members)
                if args.host_events:
                    nursery.start_soon(host_changes)
                while line := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
                    command, _, rest = line.strip().partition(" ")  # (cancellable: RoomClosed ends the block)
                    if command == "say":
                        await member.broadcast(json.loads(rest))
                    elif command == "mesh":
                        await member.wait_for_mesh()
                        say("mesh ok")
                    elif command == "poll":
                        try:
                            result = await member.poll(json.loads(rest), timeout=10)
                            say("polled", json.dumps(dict(result.answers), sort_keys=True, separators=(",", ":")),
                                json.dumps(sorted(result.missing), separators=(",", ":")))  # fmt: skip
                        except consensus.MemberCallRefused as exc:
                            say("call-refused", exc.reason)
                    elif command == "vote":
                        motion, options, rule = json.loads(rest)
                        try:
                            decision = await member.vote(motion, options=options, timeout=10,
                                                         rule=None if rule is None else rule_from_wire(rule))  # fmt: skip
                            say("voted", json.dumps(decision.outcome))
                        except consensus.MemberCallRefused as exc:
                            say("call-refused", exc.reason)
                    elif command == "release":
                        released.set()
                    elif command == "quit":
                        break
                nursery.cancel_scope.cancel()
        say("left")
    except consensus.RoomClosed:
        say("closed")
    except consensus.NameTaken as exc:
        say("refused", exc)
    except consensus.RoomUnavailable:
        say("unavailable")
    except consensus.AuthenticationError as exc:
        say("unauthenticated", exc)


def client_tls(args: argparse.Namespace) -> consensus.TLSConfig | None:
    if args.tls is None:
        return None
    folder = Path(args.tls)
    return consensus.TLSConfig(mode=consensus.TLSMode.CLIENT, ca_file=str(folder / "ca.pem"), server_name="localhost",
                               cert_key_file=str(folder / f"{args.name}.pem"))  # fmt: skip


def garble(member: Any, mode: str) -> None:
    """Make this member's position replies garbage on the wire, past its protocol's checks."""
    from consensus.room import deliberation_frames as D
    from consensus.room import protocol as P
    from consensus.room.events import Send

    reply = member._protocol.reply

    def garbled(key: int, outcome: Any) -> Any:
        frame = reply(key, outcome)
        if frame.kind != D.POSITION:
            return frame
        if mode == "wire":
            return Send(D.POSITION, {"stance": 42, "confidence": "very", "secret": [1, 2]}, frame.to, key)
        return Send(P.ANSWER, P.answer_body("not a position"), frame.to, key)

    member._protocol.reply = garbled


def drop_roster(member: Any, name: str) -> None:
    """Make this member lose the first roster that lists ``name`` (as if the bus dropped it)."""
    from consensus.room import protocol as P

    receive, dropped = member._protocol.receive_control, []

    def losing(envelope: Any, now: float) -> Any:
        if envelope.kind == P.ROSTER and not dropped and name in envelope.body.get("members", {}):
            dropped.append(envelope)
            say("dropped roster", envelope.body.get("version"))
            return []
        return receive(envelope, now)

    member._protocol.receive_control = losing


def unversioned(member: Any) -> None:
    """Make this member's joins and heartbeats name no roster version, as an implementation
    older than that field does (the host then keeps sending it the roster periodically)."""
    from consensus.room.events import Send

    hello = member._protocol._hello

    def older(kind: str) -> Any:
        frame = hello(kind)
        return Send(frame.kind, {k: v for k, v in frame.body.items() if k != "roster"}, frame.to, inline=frame.inline)

    member._protocol._hello = older


class _SayLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say("log", record.getMessage())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--answer")
    parser.add_argument("--secret-env", action="store_true", help="join with the secret in NNGC_SECRET")
    parser.add_argument("--choice")
    parser.add_argument("--confidence", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--handler-timeout", type=float, default=None)
    parser.add_argument("--join-timeout", type=lambda v: None if v == "none" else float(v), default=10.0)
    parser.add_argument("--host-timeout", type=float, default=None)
    parser.add_argument("--on-host-lost", choices=["wait", "exit"], default="wait")
    parser.add_argument("--host-events", action="store_true", help="print host lost / back")
    parser.add_argument(
        "--log", action="store_true", help="print the 'consensus' log as 'log <message>' lines"
    )
    parser.add_argument("--observer", action="store_true")
    parser.add_argument("--drop-roster-with", help="lose the first roster that lists this member")
    parser.add_argument("--members-events", action="store_true", help="print 'members <json>' at each change")
    parser.add_argument("--no-roster-version", action="store_true", help="name no roster version (an older member)")
    parser.add_argument("--tls", help="a folder holding ca.pem and NAME.pem (certificate and key)")
    parser.add_argument("--stance", help="deliberate, holding this stance")
    parser.add_argument("--persuadable", help="a stance adopted once another member shows it")
    parser.add_argument("--crash-round", type=int, default=0, help="die when asked this round")
    parser.add_argument("--ask", action="store_true", help="answer room.ask (prints 'asked <json>')")
    parser.add_argument("--reason", help="the reason given for a position kept")
    parser.add_argument("--hold-round", type=int, default=0, help="in this round, wait for 'release'")
    parser.add_argument("--stall-round", type=int, default=0, help="never answer this round")
    parser.add_argument("--garbage", choices=["handler", "wire", "kind"], help="answer deliberations with garbage")
    arguments = parser.parse_args()
    if arguments.log:
        logging.getLogger("consensus").addHandler(_SayLog())
        logging.getLogger("consensus").setLevel(logging.INFO)
    trio.run(main, arguments)
