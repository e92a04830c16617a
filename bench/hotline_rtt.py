"""Hotline ask/reply latency between two processes vs. pynng's synchronous Pair round trip.

One run measures a 64-byte round trip over ipc and over tcp (127.0.0.1) for
``pynng_sync`` (``pynng.Pair1`` blocking ``send``/``recv``) and ``hotline_ask``
(``consensus.hotline`` ``await line.ask(value)``, the peer answering with an async
``on_ask`` that returns the value), measured as :mod:`bench._rtt` describes. The goal
compares medians: hotline ask within 1.5x of the pynng sync round trip.

    python -m bench.hotline_rtt            # N=3000 per variant and transport
    python -m bench.hotline_rtt --quick    # N=1000
"""

from __future__ import annotations

import sys

from . import pair_rtt

RATIOS = {"hotline_over_sync": ("hotline_ask", "pynng_sync", ("<=", 1.5)),
          "hotline_over_floor": ("hotline_ask", "pynng_floor", ("<=", 1.15)),  # issue 18
          "plain_over_async": ("hotline_plain", "hotline_ask", ("<=", 1.3)),  # issue 18
          "trio_path_over_async": ("hotline_plain_trio", "hotline_ask", None),  # the old path, for reference
          "secret_over_plain": ("hotline_secret", "hotline_ask", ("<", 1.1))}  # issue 13


def main(argv: list[str] | None = None) -> int:
    return pair_rtt.main(argv, "hotline_rtt", RATIOS,
                         "64-byte hotline ask/reply between two processes vs. pynng sync Pair1 "
                         "round trip.")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
