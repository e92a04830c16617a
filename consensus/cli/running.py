"""How every command runs: trio, a clean stop on Ctrl-C or SIGTERM, and one-line errors.

Exit codes: 0 decided or answered, 1 no decision (or no answer), 2 a usage or connection
error, 130 interrupted before the command was under way.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click
import trio

from consensus.errors import ConsensusError

__all__ = ["EXIT_ERROR", "EXIT_NO_DECISION", "EXIT_OK", "fail", "main_with_codes", "run", "until_stopped"]

EXIT_OK, EXIT_NO_DECISION, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# What a user can cause (a bad address, nobody listening, a name taken, a file missing):
# reported in one line. Anything else is a bug and keeps its traceback.
EXPECTED = (ConsensusError, OSError, ValueError)


def fail(message: str) -> NoReturn:
    """End the command with ``message`` on stderr and the usage/connection exit code."""
    raise click.ClickException(message)


def _expected(exc: BaseException) -> BaseException | None:
    """The first expected error in ``exc`` (trio wraps errors of nurseries in groups)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _expected(inner)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, EXPECTED) else None


def run(body: Callable[[], Awaitable[int]]) -> int:
    """Run ``body`` under trio; its result is the exit code. Expected errors become one line."""
    try:
        return trio.run(body)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except click.ClickException:
        raise
    except BaseException as exc:
        found = _expected(exc)
        if found is None:
            raise
        raise click.ClickException(_describe(found)) from None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    return text.splitlines()[0] if text else type(exc).__name__


async def until_stopped(body: Callable[[], Awaitable[Any]]) -> bool:
    """Run ``body`` until it returns or a SIGINT/SIGTERM arrives; True if a signal stopped it.

    The body is cancelled and this returns normally, so that the ``async with join(...)``
    around it ends cleanly (the member says goodbye to the room)."""
    stopped = False
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                nonlocal stopped
                async for _ in signals:
                    stopped = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(on_signal)
            await body()
            nursery.cancel_scope.cancel()
    return stopped


def main_with_codes(group: click.Group, argv: list[str] | None = None) -> NoReturn:
    """Run the click ``group``: exit with the command's code; errors as one line on stderr."""
    try:
        code = group.main(args=argv, prog_name="nngc", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        exc.show()  # with the usage line and the hint to --help
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        click.echo(f"nngc: {exc.format_message()}", err=True)
        sys.exit(EXIT_ERROR)
    except (click.Abort, KeyboardInterrupt):
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
