"""What ``nngc host`` shows: members joining and leaving, and each decision, one line each.

The same lines go to a terminal and to a pipe (a log a person can tail, a script can
read); a terminal gets them with the time and in colour, and ``--json`` gives one JSON
object a line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from consensus.cli import render
from consensus.decide.decision import Decision
from consensus.room.host import Room

__all__ = ["HostView"]


class HostView:
    """Prints the host's events; :meth:`follow` waits for them until cancelled."""

    def __init__(self, *, as_json: bool, tty: bool) -> None:
        self.as_json = as_json
        self.tty = tty
        self._members: tuple[str, ...] = ()

    def _emit(self, data: dict[str, Any], text: str, colour: str | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(data))
        elif self.tty:
            click.echo(click.style(time.strftime("%H:%M:%S "), dim=True) + click.style(text, fg=colour))
        else:
            click.echo(text)
        sys.stdout.flush()  # a pipe is block-buffered: a reader sees each event as it happens

    def started(self, address: str, name: str) -> None:
        self._emit({"event": "started", "address": address, "name": name},
                   f"hosting {address} as {name!r} (Ctrl-C to stop)", "cyan")  # fmt: skip

    def stopped(self) -> None:
        self._emit({"event": "stopped"}, "room closed", "cyan")

    def members(self, present: tuple[str, ...]) -> None:
        before = set(self._members)
        for name in sorted(set(present) - before):
            self._emit({"event": "joined", "name": name, "members": list(present)},
                       f"+ {name} joined ({len(present)} present)", "green")  # fmt: skip
        for name in sorted(before - set(present)):
            self._emit({"event": "left", "name": name, "members": list(present)},
                       f"- {name} left ({len(present)} present)", "yellow")  # fmt: skip
        self._members = present

    def decision(self, decision: Decision) -> None:
        data = {"event": "decision", **render.decision_json(decision)}
        lines = list(render.decision_lines(decision))
        self._emit(data, lines[0] + " | " + lines[1], "magenta")

    async def follow(self, room: Room) -> None:
        self.members(room.members)
        while True:
            self.members(await room.wait_members_changed())
