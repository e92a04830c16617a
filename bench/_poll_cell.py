"""Cells of the suite's ``poll`` step (N members over one transport) in a process of their own.

:func:`bench.poll.suite_step` runs ``python -m bench._poll_cell OUT <bench.poll options>``
(the cells as ``--cell N:transport``) through :func:`bench._cells.run_isolated`: the rooms'
host lives here, so an NNG panic (which aborts the process) costs the cell it hit only. Each
cell's rows (:func:`bench.poll.measure`) go to ``OUT`` as one JSON line ``{"n": N,
"transport": T, "rows": [...]}`` as soon as the cell is done; the member processes serve
every cell in turn.

A SIGINT ends the cell through its own clean-up (its member processes, its folders), even
when it inherited SIGINT ignored (:func:`bench._cells.hear_ctrl_c`). Run by hand, outside a
suite's shared-memory folder (``NNG_CONSENSUS_SHM_DIR`` unset), the cell makes a run folder
of its own as the suite does (:func:`bench._suite.watch`): what a killed cell leaves there
(the tcp connections' beacons) goes with the next run's sweep, not into /dev/shm itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from patterns.shm.header import DIRECTORY_ENV

from . import _cells, _suite, poll


def main(argv: list[str]) -> int:
    _cells.hear_ctrl_c()
    out_path, *options = argv
    args = poll.parse_args(options)
    with contextlib.ExitStack() as stack:
        if not os.environ.get(DIRECTORY_ENV):  # by hand: a run folder of its own, as the suite's
            stack.enter_context(_suite.watch())
        tmpdir = tempfile.mkdtemp(prefix="nngc-bench-poll-")
        stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
        with open(out_path, "w", encoding="utf-8") as out:

            def cell_done(cell: poll.Cell, rows: list[dict[str, Any]]) -> None:
                out.write(json.dumps({"n": cell[0], "transport": cell[1], "rows": rows}) + "\n")
                out.flush()  # (in the kernel's hands: an abort later does not lose it)

            poll.measure(args, tmpdir, cell_done)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
