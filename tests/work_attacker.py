"""A hostile process for tests/test_work_attack.py: raw pynng, no toolkit socket, no secret.

    python tests/work_attacker.py TASKS_ADDRESS RESULTS_ADDRESS STREAM COUNT

Dials the dispatcher's task endpoint (a pull: whatever push hands it, it keeps, reads
and never claims) and its results endpoint (a push), says ``hello`` as "mallory" with
a capacity of 1,000,000 (plain, then sealed-looking under a made-up key) and prints
``hello``; on a ``go`` line it sends COUNT forged ``done`` frames for stream STREAM, one
per task id from 0 (attempts 1 and 2 each), with the results of an attacker. Prints
``sent N``, then waits for stdin to close, reading tasks all the while, and prints
``received N``: the task batches it got.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pynng

from patterns import Envelope, encode


def main() -> None:
    tasks_address, results_address, stream, count = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    received = 0
    with (
        pynng.Pull0(dial=tasks_address, block_on_dial=True, recv_timeout=50) as pull,
        pynng.Push0(dial=results_address, block_on_dial=True, send_timeout=1000) as push,
    ):
        done = threading.Event()

        def read() -> None:
            nonlocal received
            while not done.is_set():
                try:
                    pull.recv()
                except pynng.Timeout:
                    continue
                except pynng.Closed:
                    return
                received += 1

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while not push.pipes and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the dispatcher's side of the pipe registers a little later
        hello = encode(Envelope("hello", "mallory", 1, body={"cap": 1_000_000}))
        push.send(hello)
        # Sealed-looking: the magic, MAC scheme, a made-up key id and sequence, a random tag.
        push.send(b"\xffS\x01" + os.urandom(8) + (1).to_bytes(8, "big") + os.urandom(16) + hello)
        sent = 2
        print("hello", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        for task_id in range(count):
            items = [[task_id, attempt, True, {"n": task_id, "by": "mallory"}] for attempt in (1, 2)]
            push.send(encode(Envelope("done", "mallory", 2 + task_id, body={"st": stream, "r": items})))
            sent += 1
            if task_id % 8 == 7:
                time.sleep(0.005)
        print(f"sent {sent}", flush=True)
        sys.stdin.read()
        done.set()
        reader.join()
    print(f"received {received}", flush=True)


if __name__ == "__main__":
    main()
