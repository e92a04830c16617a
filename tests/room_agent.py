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
``quit`` leaves the room cleanly.
"""

from __future__ import annotations

import argparse
import json
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

    try:
        async with consensus.join(
            args.address, name=args.name, on_poll=on_poll, on_vote=on_vote,
            handler_timeout=args.handler_timeout, join_timeout=args.join_timeout, observer=args.observer,
        ) as member:  # fmt: skip
            say("joined")
            async with trio.open_nursery() as nursery:

                async def messages() -> None:
                    async for sender, value in member.messages():
                        say("message", sender, json.dumps(value))

                async def decisions() -> None:
                    async for decision in member.decisions():
                        say("decision", json.dumps(decision.outcome))

                nursery.start_soon(messages)
                nursery.start_soon(decisions)
                async for line in trio.wrap_file(sys.stdin):
                    command, _, rest = line.strip().partition(" ")
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--answer")
    parser.add_argument("--choice")
    parser.add_argument("--confidence", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--handler-timeout", type=float, default=None)
    parser.add_argument("--join-timeout", type=float, default=10.0)
    parser.add_argument("--observer", action="store_true")
    trio.run(main, parser.parse_args())
