"""A raw pair1 peer of a hotline, for the full-send-queue test of ``test_hotline_threaded.py``.

    python tests/raw_line_peer.py ADDRESS COUNT

Dials ADDRESS with a bare :class:`patterns.Pair`, greets the hotline there as a line's
dialer does (``hello``), sends COUNT asks (ids 100.., bodies ``{"v": i}``) and prints
``asked``: the test may stop this process now, so that nothing reads on this side. Then
it reads frames until COUNT replies are in and prints ``got JSON``: the replies' bodies by
the ask they answer, and how many ``msg`` frames (the server's ``send``) came before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say

from patterns import Envelope, Pair


async def main(address: str, count: int) -> None:
    async with Pair(dial=address, name="raw") as raw:
        await raw.send_envelope(Envelope(kind="hello", sender="raw", id=0, body={"hotline": 1}))
        for i in range(count):
            await raw.send_envelope(Envelope(kind="ask", sender="raw", id=100 + i, body={"v": i, "stream": False}))
        say("asked")
        answers: dict[int, Any] = {}
        fillers = 0
        while len(answers) < count:
            envelope = await raw.receive_envelope()
            if envelope.kind == "reply":
                assert envelope.re is not None and envelope.re not in answers, envelope
                answers[envelope.re] = envelope.body
            elif envelope.kind == "msg":
                fillers += 1
        say("got", json.dumps({"answers": answers, "fillers": fillers}))


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
