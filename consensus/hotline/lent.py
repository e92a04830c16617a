"""What a hotline's trio reader tells another thread's reader that its line is lent to.

A line may be read outside trio: by an asyncio loop (:mod:`consensus.hotline.foreign`), by
plain threads that ask (:mod:`consensus.hotline.thread_asks`) and by the crew that serves a
plain ``on_ask`` (:mod:`consensus.hotline.thread_serve`). :class:`Lent` is the one face
trio's :class:`~consensus.hotline.reader.Reader` sees of any of them.
"""

from __future__ import annotations

from typing import Protocol

from consensus.hotline.protocol import LineProtocol
from patterns import Fields

__all__ = ["Lent"]


class Lent(Protocol):
    """Asks made in another thread, which may also read the line (:mod:`consensus.hotline.foreign`,
    :mod:`consensus.hotline.thread_asks`): what trio tells it. ``changed`` fails its asks
    when the connection they went on is gone."""

    def changed(self, protocol: LineProtocol) -> None:
        """The line's state changed (trio's thread): connected, lost, closed."""

    def fail_all(self, kind: str, why: str) -> None:
        """Its open asks end as ``kind`` (``lost``, ``taken``, ``closed``) (trio's thread)."""

    def settle(self) -> int:
        """Its asks into the protocol's books (trio's thread, before statistics); returns how many are open."""

    def claim(self, fields: Fields, pipe: int) -> bool:
        """Take a frame trio read on connection ``pipe`` (its fields) if it answers one of its
        asks, sent on that connection (trio's thread)."""

    def drained(self) -> None:
        """The receive loop acted on every event handed over (trio's thread)."""

    def held_back(self) -> int:
        """Times it stopped reading the line at one of its bounds (trio's backlog, its own
        queue): ``statistics().reading_paused``."""

    def lend_now(self) -> bool:
        """(Right after a claim, in the receive loop.) True: stop reading, the askers'
        threads read the line from now on (:meth:`Reader.aside`)."""

    def reclaim(self, *, idle_only: bool = True) -> bool:
        """(No thread reads the line.) True when trio reads it again: ``idle_only``, only if
        no thread asked during the lease that just ended; the frames threads read for trio
        are handed over first."""

    def recall(self) -> None:
        """A trio task asks on the line (trio's thread): a reader the line is lent to for
        good may give it back while trio asks (:meth:`Reader.recalled_for_asks`)."""

    def relend(self) -> bool:
        """(The receive loop, between frames, after :meth:`Reader.recalled_for_asks`.) True: the line
        is lent again, trio no longer reads it."""
