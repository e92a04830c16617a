"""``python -m bench [args]``: run every benchmark (for now only ``pair_rtt``) with the given args."""

import sys

from . import pair_rtt

if __name__ == "__main__":
    sys.exit(pair_rtt.main())
