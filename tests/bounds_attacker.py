"""A hostile process for tests/test_bounds_attack.py: raw pynng, no toolkit socket.

    python tests/bounds_attacker.py frames MESH_ADDRESS COUNT
    python tests/bounds_attacker.py joins CONTROL_ADDRESS COUNT

``frames`` sends COUNT of each attack frame over a raw bus0 dialed to the room's mesh:
a map of 40,000 bignum keys that all hash to 0 (0.5 MB), the same with 30,000 keys
(under max_items: refused for its keys), and 2,000,000 empty arrays (2 MiB). ``joins``
sends COUNT join frames under fake names over one control connection. Each mode
prints ``sent N`` and waits for stdin to close.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cbor2
import pynng

from consensus.room import protocol as P
from patterns import Envelope, encode

HASH_MODULUS = 2**61 - 1  # CPython: hash(k * (2**61 - 1)) == 0 for every int k


def collision_frame(keys: int) -> bytes:
    # Written with cbor2 itself: patterns.encode refuses keys other than text or bytes.
    body = {k * HASH_MODULUS: 0 for k in range(1, keys + 1)}
    return cbor2.dumps({"v": 1, "k": "say", "s": "mallory", "id": keys, "b": body})


def amplification_frame(arrays: int) -> bytes:
    head = encode(Envelope("say", "mallory", arrays, body=[]))
    return head[:-1] + b"\x9a" + arrays.to_bytes(4, "big") + b"\x80" * arrays


def main() -> None:
    mode, address, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with pynng.Bus0(dial=address, block_on_dial=True) as bus:
        # Wait until the host has the pipe, or the first frames go nowhere.
        deadline = time.monotonic() + 10
        while not bus.pipes and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the host's side of the pipe registers a little later
        sent = 0
        if mode == "frames":
            frames = [collision_frame(40_000), collision_frame(30_000), amplification_frame(2_000_000)]
            for _ in range(count):
                for frame in frames:
                    bus.send(frame)
                    sent += 1
                    time.sleep(0.03)  # bus0 drops past a queue of 16: pace the attack, not the test
        else:
            for i in range(count):
                body = P.hello_body(f"fake{i}", i + 1, f"tcp://127.0.0.1:{1024 + i}")
                bus.send(encode(Envelope(P.JOIN, f"fake{i}", i + 1, body=body)))
                sent += 1
                if i % 16 == 15:
                    time.sleep(0.01)
        print(f"sent {sent}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
