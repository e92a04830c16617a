"""``python -m consensus``: the ``nngc`` command line."""

from consensus.cli import main

if __name__ == "__main__":
    main()
