"""The ``nngc`` command line (``python -m consensus`` does the same); see docs/cli.md."""

from __future__ import annotations

from consensus.cli.app import cli
from consensus.cli.running import main_with_codes

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """The ``nngc`` entry point: runs the command and exits with its code."""
    main_with_codes(cli, argv)
