"""``nngc``: the room from the command line (host, join, poll, vote, members, watch, ask).

Commands that only look or ask (poll, vote, members, watch, ask) join the room as an
observer named ``nngc-<pid>``: never polled, never counted in a vote. Work sharing
(``distribute``, ``work``) lives in :mod:`consensus.cli.work`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import click
import trio

from consensus.cli import render
from consensus.cli.agent import ExecAgent, Kind, Request, ServeAgent
from consensus.cli.hostview import HostView
from consensus.cli.running import EXIT_ERROR, EXIT_NO_DECISION, EXIT_OK, fail, run, until_stopped
from consensus.cli.tls import Credentials, credentials, loopback_client
from consensus.cli.work import distribute_command, work_command
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, Unanimous
from consensus.endpoints import check_listen, endpoints, port_range
from consensus.room.hosting import host
from consensus.room.joining import join
from consensus.room.member import Member

__all__ = ["cli"]

RULES: dict[str, Callable[[], Rule]] = {"majority": Majority, "plurality": Plurality, "unanimous": Unanimous}
RULE_HELP = "majority, plurality, unanimous or supermajority=FRACTION (e.g. supermajority=2/3)."


def parse_rule(text: str) -> Rule:
    """A rule named on the command line (see ``RULE_HELP``)."""
    name, _, fraction = text.partition("=")
    if name in RULES and not fraction:
        return RULES[name]()
    if name == "supermajority" and fraction:
        try:
            return Supermajority(Fraction(fraction))
        except (ValueError, ZeroDivisionError) as exc:
            raise click.BadParameter(f"{text!r}: {exc}", param_hint="--rule") from None
    raise click.BadParameter(f"{text!r} is not a rule: use {RULE_HELP}", param_hint="--rule")

json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON (one object) instead of text.")
join_timeout = click.option(
    "--join-timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
    help="Seconds to wait for the host to welcome us.",
)  # fmt: skip


def local_address(addr: str) -> str:
    """Where this machine reaches a room listening at ``addr`` (a wildcard host is not dialable)."""
    for wildcard in ("0.0.0.0", "[::]", "*"):
        addr = addr.replace(f"://{wildcard}:", "://127.0.0.1:" if wildcard != "[::]" else "://[::1]:")
    return addr


def observer_name() -> str:
    return f"nngc-{os.getpid()}"


def value_of(text: str, as_json: bool) -> Any:
    """A value given on the command line: text, or with ``--json-value`` parsed as JSON."""
    if not as_json:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not JSON: {exc}") from None


def emit(data: Any, lines: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data))
    else:
        for line in lines:
            click.echo(line)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nng-consensus", prog_name="nngc")
def cli() -> None:
    """Polls, votes and work sharing for agents, over NNG. ADDR is a room address:
    tcp://HOST:PORT (the room uses PORT to PORT+4) or ipc:///path."""


# ---------------------------------------------------------------------------- host
@cli.command("host")
@click.argument("addr")
@click.option("--name", default="host", show_default=True, help="The host's name in the room.")
@click.option("--heartbeat", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="Seconds between the heartbeats members are told to send.")  # fmt: skip
@click.option("--member-calls/--no-member-calls", default=True, show_default=True,
              help="Let members open polls and votes through the host.")  # fmt: skip
@json_flag
@credentials(server=True)
def host_command(addr: str, name: str, heartbeat: float, member_calls: bool, as_json: bool,
                 creds: Credentials) -> int:  # fmt: skip
    """Host a room at ADDR and show members joining and leaving, and each decision."""

    async def body() -> int:
        view = HostView(as_json=as_json, tty=sys.stdout.isatty())
        async with host(addr, name=name, heartbeat=heartbeat, member_calls=member_calls, tls=creds.tls,
                        secret=creds.secret) as room:  # fmt: skip
            view.started(room.address, name)
            eye = f"{name}-view"
            await until_stopped(lambda: view.follow(room, _eye(addr, eye, creds), eye))
        view.stopped()
        return EXIT_OK

    return run(body)


# ---------------------------------------------------------------------------- join
@cli.command("join")
@click.argument("addr")
@click.option("--name", required=True, help="This member's name in the room.")
@click.option("--exec", "command", help="Run this shell command for each poll, vote, ask and task.")
@click.option("--serve", help="Start this shell command once and speak JSON lines with it.")
@click.option("--json-io", is_flag=True, help="With --exec: JSON on stdin and stdout instead of text.")
@click.option("--handler-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a request may take; then the command is killed and the request fails.")  # fmt: skip
@click.option("--no-tasks", is_flag=True, help="Do not take tasks from the room's host.")
@click.option("--listen", help="This member's mesh endpoint, e.g. tcp://0.0.0.0:7410 (default: any port).")
@click.option("--line-ports", help="Ports for hotlines to this member, e.g. 7420-7429 (default: any).")
@join_timeout
@credentials(server=False)
def join_command(addr: str, name: str, command: str | None, serve: str | None, json_io: bool,
                 handler_timeout: float | None, no_tasks: bool, listen: str | None, line_ports: str | None,
                 join_timeout: float, creds: Credentials) -> int:  # fmt: skip
    """Join the room at ADDR as NAME and answer with a command, until interrupted."""
    if (command is None) == (serve is None):
        raise click.UsageError("give exactly one of --exec CMD and --serve CMD")
    try:
        endpoints(addr)
        if listen is not None:
            check_listen(addr, listen)
        port_range(line_ports)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if json_io and serve is not None:
        raise click.UsageError("--json-io goes with --exec (--serve always speaks JSON)")

    async def body() -> int:
        async with _agent(command, serve, json_io, handler_timeout) as agent:

            async def on_poll(question: Any) -> Any:
                return await agent(Request(Kind.POLL, question))

            async def on_vote(motion: Any, options: Any) -> Any:
                return await agent(Request(Kind.VOTE, motion, tuple(options)))

            async def on_ask(value: Any) -> Any:
                return await agent(Request(Kind.ASK, value))

            async def on_task(task: Any) -> Any:
                return await agent(Request(Kind.TASK, task))

            async with join(addr, name=name, on_poll=on_poll, on_vote=on_vote, on_ask=on_ask,
                            on_task=None if no_tasks else on_task, join_timeout=join_timeout,
                            tls=creds.tls, secret=creds.secret, listen=listen,
                            line_ports=line_ports) as member:  # fmt: skip
                click.echo(f"joined {addr} as {member.name}", err=True)
                exited = await until_stopped(lambda: _until_agent_exits(agent))
            if isinstance(agent, ServeAgent) and not exited:
                fail(f"the --serve command exited (status {agent.returncode}); left the room")
        click.echo(f"left {addr}", err=True)
        return EXIT_OK

    return run(body)


def _eye(addr: str, eye: str, creds: Credentials) -> Any:
    """Decisions reach the room's members, not the Room object: an observer of our own room
    hears them (never polled, never counted in a vote)."""
    return join(local_address(addr), name=eye, observer=True, tls=loopback_client(creds.tls),
                secret=creds.secret, join_timeout=5)  # fmt: skip


class _Single:
    """An :class:`ExecAgent` in the ``async with`` shape of :class:`ServeAgent`."""

    def __init__(self, agent: ExecAgent) -> None:
        self.agent = agent

    async def __aenter__(self) -> ExecAgent:
        return self.agent

    async def __aexit__(self, *exc: object) -> None:
        return None


def _agent(command: str | None, serve: str | None, json_io: bool, timeout: float | None) -> Any:
    if serve is not None:
        return ServeAgent(serve, timeout=timeout)
    assert command is not None
    return _Single(ExecAgent(command, json_io=json_io, timeout=timeout))


async def _until_agent_exits(agent: ExecAgent | ServeAgent) -> None:
    if isinstance(agent, ServeAgent):
        await agent.wait_exited()
    else:
        await trio.sleep_forever()


# ---------------------------------------------------------------------------- observers
def _observe(addr: str, join_timeout: float, creds: Credentials) -> Any:
    return join(addr, name=observer_name(), observer=True, join_timeout=join_timeout, tls=creds.tls,
                secret=creds.secret)  # fmt: skip


@cli.command("poll")
@click.argument("addr")
@click.argument("question")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
@click.option("--quorum", type=click.IntRange(min=1), default=None, help="Return once this many answered.")
@click.option("--json-value", is_flag=True, help="QUESTION is JSON, not text.")
@json_flag
@join_timeout
@credentials(server=False)
def poll_command(addr: str, question: str, timeout: float, quorum: int | None, json_value: bool,
                 as_json: bool, join_timeout: float, creds: Credentials) -> int:  # fmt: skip
    """Ask every member of the room QUESTION; print the answers.

    Exit code 0 when at least one member answered (and the quorum, if given, was met),
    1 otherwise."""
    asked = value_of(question, json_value)

    async def body() -> int:
        async with _observe(addr, join_timeout, creds) as member:
            result = await member.poll(asked, timeout=timeout, quorum=quorum)
        emit(render.poll_json(result), render.poll_lines(result), as_json)
        return EXIT_OK if result.answers and result.quorum_met else EXIT_NO_DECISION

    return run(body)


@cli.command("vote")
@click.argument("addr")
@click.argument("motion")
@click.option("--options", required=True, help="The options, comma-separated (e.g. yes,no).")
@click.option("--rule", default="majority", show_default=True, help=RULE_HELP)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
@click.option("--quorum", type=click.IntRange(min=1), default=None, help="Ballots needed for a decision.")
@json_flag
@join_timeout
@credentials(server=False)
def vote_command(addr: str, motion: str, options: str, rule: str, timeout: float, quorum: int | None,
                 as_json: bool, join_timeout: float, creds: Credentials) -> int:  # fmt: skip
    """Put MOTION to a vote among the room's members; print the decision.

    Exit code 0 when the vote decided, 1 when it did not (tie, no quorum, no majority)."""
    chosen_rule = parse_rule(rule)
    choices = [o.strip() for o in options.split(",") if o.strip()]
    if len(choices) < 2 or len(set(choices)) != len(choices):
        raise click.BadParameter(f"{options!r}: give two or more distinct options", param_hint="--options")

    async def body() -> int:
        async with _observe(addr, join_timeout, creds) as member:
            decision = await member.vote(motion, options=choices, rule=chosen_rule, timeout=timeout,
                                         quorum=quorum)  # fmt: skip
        emit(render.decision_json(decision), render.decision_lines(decision), as_json)
        return EXIT_OK if decision.outcome is not None else EXIT_NO_DECISION

    return run(body)


@cli.command("members")
@click.argument("addr")
@json_flag
@join_timeout
@credentials(server=False)
def members_command(addr: str, as_json: bool, join_timeout: float, creds: Credentials) -> int:
    """List the members of the room at ADDR (one name a line)."""

    async def body() -> int:
        async with _observe(addr, join_timeout, creds) as member:
            names = [n for n in member.members if n != member.name]
        emit({"members": names}, names, as_json)
        return EXIT_OK

    return run(body)


@cli.command("watch")
@click.argument("addr")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many events.")
@json_flag
@join_timeout
@credentials(server=False)
def watch_command(addr: str, count: int | None, as_json: bool, join_timeout: float, creds: Credentials) -> int:
    """Print the room's broadcasts and decisions as they come, until interrupted (or --count)."""

    async def body() -> int:
        async with _observe(addr, join_timeout, creds) as member:
            click.echo(f"watching {addr} as {member.name}", err=True)
            await until_stopped(lambda: _watch(member, count, as_json))
        return EXIT_OK

    return run(body)


async def _watch(member: Member, count: int | None, as_json: bool) -> None:
    events_send, events = trio.open_memory_channel[tuple[str, Any]](64)

    async def messages() -> None:
        async for sender, value in member.messages():
            await events_send.send(("message", {"event": "message", "from": sender,
                                                "value": render.jsonable(value)}))  # fmt: skip

    async def decisions() -> None:
        async for decision in member.decisions():
            await events_send.send(("decision", {"event": "decision", **render.decision_json(decision)}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(messages)
        nursery.start_soon(decisions)
        seen = 0
        async for kind, data in events:
            if as_json:
                click.echo(json.dumps(data))
            elif kind == "message":
                click.echo(f"{data['from']}: {render.show(data['value'])}")
            else:
                click.echo(f"decision: {render.show(data['outcome']) if data['decided'] else 'none'}")
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                break
        nursery.cancel_scope.cancel()


@cli.command("ask")
@click.argument("addr")
@click.argument("name")
@click.argument("value")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True)
@click.option("--json-value", is_flag=True, help="VALUE is JSON, not text.")
@json_flag
@join_timeout
@credentials(server=False)
def ask_command(addr: str, name: str, value: str, timeout: float, json_value: bool, as_json: bool,
                join_timeout: float, creds: Credentials) -> int:  # fmt: skip
    """Ask the member NAME one question on a hotline through the room; print the answer."""
    asked = value_of(value, json_value)

    async def body() -> int:
        async with _observe(addr, join_timeout, creds) as member:
            line = await member.hotline(name, timeout=timeout)
            answer = await line.ask(asked, timeout=timeout)
        emit({"member": name, "answer": render.jsonable(answer)}, [render.show(answer)], as_json)
        return EXIT_OK

    return run(body)


cli.add_command(distribute_command)
cli.add_command(work_command)

_ = EXIT_ERROR  # documented alongside the others in consensus.cli.running
