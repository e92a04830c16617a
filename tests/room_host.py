"""A room host in a child process, for the tests that kill and restart the host.

    python tests/room_host.py ADDRESS [--heartbeat S] [--advertise NAME] [--secret-env] [--tls DIR]

Prints ``up`` once listening. Reads commands on stdin: ``members N`` waits until N
members are present (prints ``members <json names>``), ``poll`` runs a poll (prints
``polled <json answers> <json missing>``), ``vote <json options>`` runs a vote on them
(prints ``voted <json outcome> <json missing>``), ``say <json>`` broadcasts a value (prints
``said``), ``quit`` leaves (closing the room). With ``--tls DIR`` it hosts a ``tls+tcp``
address with the certificate and key in ``DIR/host.pem``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say

import consensus


async def main(args: argparse.Namespace) -> None:
    secret = consensus.Secret.from_env() if args.secret_env else None
    tls = None
    if args.tls is not None:
        tls = consensus.TLSConfig(
            mode=consensus.TLSMode.SERVER, cert_key_file=str(Path(args.tls) / "host.pem")
        )
    async with consensus.host(args.address, heartbeat=args.heartbeat, secret=secret, advertise=args.advertise,
                              tls=tls) as room:  # fmt: skip
        say("up")
        async for line in trio.wrap_file(sys.stdin):
            command, _, rest = line.strip().partition(" ")
            if command == "members":
                names = await room.wait_for_members(int(rest))
                say("members", json.dumps(list(names), separators=(",", ":")))
            elif command == "poll":
                result = await room.poll("here?", timeout=10)
                say("polled", json.dumps(dict(result.answers), sort_keys=True, separators=(",", ":")),
                    json.dumps(sorted(result.missing), separators=(",", ":")))  # fmt: skip
            elif command == "vote":
                decision = await room.vote("which?", options=json.loads(rest), timeout=10)
                say("voted", json.dumps(decision.outcome), json.dumps(sorted(decision.missing)))
            elif command == "say":
                await room.broadcast(json.loads(rest))
                say("said")
            elif command == "quit":
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--secret-env", action="store_true", help="host with the secret in NNGC_SECRET")
    parser.add_argument("--advertise", help="announce the room on the LAN under this name")
    parser.add_argument("--tls", help="a folder holding host.pem (certificate and key)")
    trio.run(main, parser.parse_args())
