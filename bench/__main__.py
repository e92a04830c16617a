"""``python -m bench [--quick]``: run every benchmark in turn, each writing its JSON to bench/results/.

The full suite (transports and peers side by side, plots) is still to come; for now
this runs ``pair_rtt``, ``hotline_rtt``, ``poll``, ``distribute``, ``stream_memory`` and ``shm``
with the flags given (``--quick`` is passed on).
"""

import sys

from . import distribute, hotline_rtt, pair_rtt, poll, shm, stream_memory

if __name__ == "__main__":
    quick = ["--quick"] if "--quick" in sys.argv[1:] else []
    status = 0
    for bench in (pair_rtt, hotline_rtt, poll, distribute, stream_memory, shm):
        status |= bench.main(quick)
    sys.exit(status)
