"""What ``nngc host`` shows: members joining and leaving, and each decision, one line each.

The same lines go to a terminal and to a pipe (a log a person can tail, a script can
read); a terminal gets them with the time and in colour, and ``--json`` gives one JSON
object a line.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import click
import trio

from consensus.cli import render
from consensus.decide.decision import Decision
from consensus.errors import ConsensusError
from consensus.room.host import Room
from consensus.room.member import Member

__all__ = ["HostView"]


class HostView:
    """Prints the host's events; :meth:`follow` waits for them until cancelled."""

    def __init__(self, *, as_json: bool, tty: bool) -> None:
        self.as_json = as_json
        self.tty = tty
        self._members: tuple[str, ...] = ()
        self._observers: tuple[str, ...] = ()

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

    def members(self, present: tuple[str, ...], observers: tuple[str, ...] = ()) -> None:
        """Show who came and went since the last call (observers marked as such)."""
        for name in sorted(set(present) - set(self._members)):
            self._emit({"event": "joined", "name": name, "members": list(present)},
                       f"+ {name} joined ({len(present)} present)", "green")  # fmt: skip
        for name in sorted(set(observers) - set(self._observers)):
            self._emit({"event": "joined", "name": name, "observer": True, "members": list(present)},
                       f"+ {name} is watching", "blue")  # fmt: skip
        for name in sorted(set(self._members) - set(present)):
            self._emit({"event": "left", "name": name, "members": list(present)},
                       f"- {name} left ({len(present)} present)", "yellow")  # fmt: skip
        for name in sorted(set(self._observers) - set(observers)):
            self._emit({"event": "left", "name": name, "observer": True, "members": list(present)},
                       f"- {name} stopped watching", "blue")  # fmt: skip
        self._members, self._observers = present, observers

    def decision(self, decision: Decision) -> None:
        data = {"event": "decision", **render.decision_json(decision)}
        lines = list(render.decision_lines(decision))
        self._emit(data, lines[0] + " | " + lines[1], "magenta")

    async def follow(self, room: Room, eye: AbstractAsyncContextManager[Member], eye_name: str) -> None:
        """Show the room's changes, and the decisions that ``eye`` (an observer of the room
        named ``eye_name``, joined here) hears; if it cannot join, say so once and go on."""

        def others() -> tuple[str, ...]:
            return tuple(n for n in room.observers if n != eye_name)

        async def decisions() -> None:
            try:
                async with eye as member:
                    async for decision in member.decisions():
                        self.decision(decision)
            except ConsensusError as exc:
                self._emit({"event": "warning", "message": f"decisions are not shown: {exc}"},
                           f"! decisions are not shown: {exc}", "red")  # fmt: skip

        async with trio.open_nursery() as nursery:
            nursery.start_soon(decisions)
            self.members(room.members, others())
            while True:
                await room.wait_members_changed()
                self.members(room.members, others())
