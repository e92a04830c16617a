"""A simulated worker process for the work-sharing tests.

    python tests/work_agent.py ADDRESS NAME [--room] [--concurrency N] [--prefetch N] [--sync] [--secret-env]
                               [--heartbeat S] [--stall-after K]

Joins a standalone dispatcher (``consensus.Worker``) or, with ``--room``, a room as a
member with ``on_task``. What the handler does is said by the task itself, a map:
``{"n": int, "sleep": seconds, "raise": bool, "exit": bool}``: it sleeps, then raises
``RuntimeError``, or ends this process at once (``os._exit``: a task that kills every
worker), or returns ``{"n": n, "by": NAME}``. Prints ``ready`` once connected and
``done N`` after each handler returns. Reads commands on stdin: ``quit`` leaves cleanly;
end of input does too. With ``--secret-env`` the secret comes from ``NNGC_SECRET``.
``--heartbeat`` sets a standalone worker's heartbeat (default: the library's).
``--stall-after K``: once K handlers returned, each new one prints ``stalled N`` and never
returns (a worker that holds its claimed tasks; not with ``--sync``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say, wait_for_quit

import consensus


def make_handler(name: str, sync: bool, stall_after: int | None = None) -> Any:
    returned = 0
    def outcome(task: Any) -> Any:
        if task.get("exit"):
            os._exit(17)
        if task.get("raise"):
            raise RuntimeError(f"{name} cannot do task {task.get('n')}")
        say("done", task.get("n"))
        return {"n": task.get("n"), "by": name}

    if sync:

        def plain(task: Any) -> Any:
            time.sleep(task.get("sleep", 0))
            return outcome(task)

        return plain

    async def handler(task: Any) -> Any:
        nonlocal returned
        if stall_after is not None and returned >= stall_after:
            say("stalled", task.get("n"))
            await trio.sleep_forever()
        await trio.sleep(task.get("sleep", 0))
        result = outcome(task)
        returned += 1
        return result

    return handler


async def main(args: argparse.Namespace) -> None:
    handler = make_handler(args.name, args.sync, args.stall_after)
    secret = consensus.Secret.from_env() if args.secret_env else None
    if args.room:
        async with consensus.join(args.address, name=args.name, on_task=handler, secret=secret,
                                  task_concurrency=args.concurrency, task_prefetch=args.prefetch):  # fmt: skip
            say("ready")
            await wait_for_quit()
    else:
        async with consensus.Worker(args.address, name=args.name, handler=handler, secret=secret,
                                    concurrency=args.concurrency, prefetch=args.prefetch,
                                    **({} if args.heartbeat is None else {"heartbeat": args.heartbeat})) as worker:  # fmt: skip
            await worker.wait_connected()
            say("ready")
            await wait_for_quit()
    say("bye")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--room", action="store_true")
    parser.add_argument("--sync", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=None)
    parser.add_argument("--secret-env", action="store_true")
    parser.add_argument("--heartbeat", type=float, default=None)
    parser.add_argument("--stall-after", type=int, default=None)
    trio.run(main, parser.parse_args())
