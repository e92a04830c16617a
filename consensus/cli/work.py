"""``nngc distribute`` and ``nngc work``: a standalone dispatcher and its command workers.

A room's dispatcher belongs to the process hosting the room, which another shell cannot
reach; so ``nngc distribute ADDR`` runs its own :class:`~consensus.Dispatcher` at ADDR
(tcp PORT and PORT+1, or ipc ``.tasks``/``.results``) for as long as its tasks last, and
``nngc work ADDR --exec CMD`` runs a :class:`~consensus.Worker` there. (``nngc join
--exec`` members also take tasks, from a room host that distributes in Python.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import click
import trio

from consensus.cli import render
from consensus.cli.agent import ExecAgent, Kind, Request, ServeAgent
from consensus.cli.running import EXIT_NO_DECISION, EXIT_OK, fail, run, until_stopped
from consensus.cli.tls import tls_options
from consensus.work.dispatcher import Dispatcher
from consensus.work.worker import Worker
from patterns import TLSConfig

__all__ = ["distribute_command", "read_tasks", "work_command"]


def read_tasks(stream: TextIO, *, text: bool) -> Iterator[Any]:
    """The tasks on ``stream``: one JSON value a line (or with ``text``, each line as text);
    blank lines are skipped. A line that is not JSON ends the command with its number."""
    for number, line in enumerate(stream, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if text:
            yield line
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            fail(f"stdin line {number} is not JSON ({exc}); use --text for plain lines")


@click.command("distribute")
@click.argument("addr")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Wait for this many workers before handing out tasks.")  # fmt: skip
@click.option("--wait", "wait_timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds to wait for those workers.")  # fmt: skip
@click.option("--text", is_flag=True, help="Each stdin line is a task as text (default: JSON).")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds a worker may hold a task without renewing it.")  # fmt: skip
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--ordered", is_flag=True, help="Print outcomes in the order of the tasks.")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar on stderr (default: when stderr is a terminal).")  # fmt: skip
@tls_options(server=True)
def distribute_command(addr: str, workers: int, wait_timeout: float, text: bool, lease: float,
                       max_attempts: int, ordered: bool, progress: bool | None,
                       tls: TLSConfig | None) -> int:  # fmt: skip
    """Hand out the tasks read from stdin (JSON lines) to the workers at ADDR.

    Starts a dispatcher at ADDR; workers are `nngc work ADDR --exec CMD` (or Python
    `consensus.Worker`s). Prints one JSON line per outcome: {"task", "result", "error",
    "worker", "attempts"}. Exit code 0 when every task succeeded, 1 when any failed."""
    from tqdm import tqdm

    async def body() -> int:
        failed = 0
        async with Dispatcher(addr, name="nngc-distribute", tls=tls) as dispatcher:
            with trio.move_on_after(wait_timeout) as waiting:
                await dispatcher.wait_for_workers(workers)
            if waiting.cancelled_caught:
                have = len(dispatcher.workers)
                fail(f"{have} of {workers} worker(s) came to {addr} within {wait_timeout:g} s")
            bar = tqdm(unit="task", file=sys.stderr, disable=not progress if progress is not None else None)
            tasks = read_tasks(sys.stdin, text=text)
            try:
                async with dispatcher.distribute(tasks, lease=lease, max_attempts=max_attempts,
                                                 ordered=ordered) as outcomes:  # fmt: skip
                    async for outcome in outcomes:
                        failed += not outcome.ok
                        bar.update(1)
                        if failed:
                            bar.set_postfix(failed=failed)
                        click.echo(json.dumps(render.outcome_json(outcome)))
                        sys.stdout.flush()
            finally:
                bar.close()
        return EXIT_NO_DECISION if failed else EXIT_OK

    return run(body)


@click.command("work")
@click.argument("addr")
@click.option("--exec", "command", help="Run this shell command for each task (the task on stdin).")
@click.option("--serve", help="Start this shell command once and speak JSON lines with it.")
@click.option("--json-io", is_flag=True, help="With --exec: JSON on stdin and stdout instead of text.")
@click.option("--name", default=None, help="The worker's name (default: worker-<pid>-<random>).")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tasks run at once.")  # fmt: skip
@click.option("--handler-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a task may take; then the command is killed and the attempt fails.")  # fmt: skip
@tls_options(server=False)
def work_command(addr: str, command: str | None, serve: str | None, json_io: bool, name: str | None,
                 concurrency: int, handler_timeout: float | None, tls: TLSConfig | None) -> int:  # fmt: skip
    """Work for the dispatcher at ADDR (`nngc distribute`) with a command, until interrupted."""
    if (command is None) == (serve is None):
        raise click.UsageError("give exactly one of --exec CMD and --serve CMD")

    async def body() -> int:
        if serve is not None:
            async with ServeAgent(serve, timeout=handler_timeout) as served:
                await _work(addr, served, name, concurrency, served, tls)
        else:
            assert command is not None
            await _work(addr, ExecAgent(command, json_io=json_io, timeout=handler_timeout), name,
                        concurrency, None, tls)  # fmt: skip
        return EXIT_OK

    return run(body)


async def _work(addr: str, agent: ExecAgent | ServeAgent, name: str | None, concurrency: int,
                served: ServeAgent | None, tls: TLSConfig | None) -> None:  # fmt: skip
    async def on_task(task: Any) -> Any:
        return await agent(Request(Kind.TASK, task))

    async with Worker(addr, handler=on_task, name=name, concurrency=concurrency, tls=tls) as worker:
        click.echo(f"working for {addr} as {worker.name}", err=True)
        exited = await until_stopped(served.wait_exited if served is not None else trio.sleep_forever)
    if served is not None and not exited:
        fail(f"the --serve command exited (status {served.returncode})")
