"""One end of a hotline as a sans-IO object (h11-style): frames and times in, frames and
events out.

:class:`LineProtocol` never touches a socket or a clock. Its driver tells it when a
connection (an NNG pipe) comes and goes (:meth:`~LineProtocol.pipe_up`,
:meth:`~LineProtocol.pipe_down`), hands it every decoded frame with the pipe it came on
(:meth:`~LineProtocol.receive`), ticks it once per heartbeat (:meth:`~LineProtocol.tick`),
and asks it for the frames to send (:meth:`~LineProtocol.ask`,
:meth:`~LineProtocol.answer`, :meth:`~LineProtocol.message`). It owns every check and
counter of the line: frame ids, the table of open asks, the greeting, heartbeats.

Greeting. Each side sends ``hello`` first on every new connection; a side is
*connected* once it has the peer's hello and the driver reported every hello it made for
that connection sent (:meth:`~LineProtocol.hello_sent`): until then asks and values wait,
as while no peer is there, so none overtakes a hello still to go (on a sealed line the
peer could not open it yet: lost until its timeout). NNG's pair1 keeps one peer: a listener that
has one accepts a second dialer's connection at the transport level and closes it at
once, before anything is said, and the dialer's NNG dials again and again. So a dialer
whose connection closes before the peer's hello knows the line is taken
(:attr:`LineState.TAKEN`), and stays so until a hello comes (the first peer left and
this one got in). Frames that come before the hello are still handled.

On a sealed line (``keys``) a hello must also be *fresh*: it names its sender's key id and
a nonce drawn for the connection, and echoes the nonce of the peer's hello it answers, and
only a hello that echoes the nonce this end drew for *this* connection greets the line
and agrees its session (an echo of this end's key id would be fresh per run only: a dead
run's unread hello could take a later reconnection). One that does not (the peer's first
hello on a connection, which could not know this end's nonce, or a recorded hello
replayed) is answered with this end's hello echoing its nonce, at most once per nonce
(and for at most ``_ANSWERS``) on a connection that is not greeted yet, and on a
greeted one it is dropped: a live peer completes in one more frame, a replayer gets
nothing (counted: ``stale_hellos``).
"""

from __future__ import annotations

import math
import secrets

from consensus.hotline import frames as f
from consensus.hotline.asks import Action, AskTable, AskTableStatistics
from consensus.hotline.events import (
    Answer,
    AskReceived,
    Disconnected,
    Event,
    Greeted,
    Ignored,
    LineState,
    Malformed,
    Message,
    PingReceived,
    ProtocolStatistics,
    Rehello,
    Role,
)  # fmt: skip
from consensus.trust.line import LineKeys
from patterns import Envelope, Fields

__all__ = ["ID_MASK", "LineProtocol"]

ID_MASK = 0xFFFF_FFFF_FFFF_FFFF  # frame and ask ids are unsigned 64-bit
_GONE = 16  # connections remembered as closed (a frame from one is from the past)
_PONG = Ignored("pong")
_QUIET = Ignored("ping while this side's hello is not out")  # (see tick)
_STALE = Ignored("stale answer")
_HELLO_AGAIN = Ignored("hello repeated")
_STALE_HELLO = Ignored("stale hello")  # sealed lines: another key id on a greeted connection
_ANSWERED = Ignored("hello answered already")
_ANSWERS = 8  # nonces a sealed line answers hellos of on one connection (its peer's is one)
_FINAL = (f.REPLY, f.END, f.ERROR)


class LineProtocol:
    """The rules of one end of a hotline; the same for both ends but for :attr:`role`."""

    def __init__(self, role: Role, name: str, *, heartbeat: float, missed_heartbeats: int,
                 first_id: int = 0, keys: LineKeys | None = None) -> None:  # fmt: skip
        if not (heartbeat > 0 and math.isfinite(heartbeat)) or missed_heartbeats < 1:
            raise ValueError(
                f"heartbeat must be > 0 s and missed_heartbeats >= 1, got {heartbeat!r}, {missed_heartbeats!r}"
            )
        self.role = role
        self.name = name
        self.heartbeat = float(heartbeat)
        self.missed_heartbeats = missed_heartbeats
        self.asks = AskTable()
        # The peer said hello on the current connection and this side's hellos there went
        # out: what asks and values wait for (read by every ask: an attribute, no call).
        self.connected = False
        self._greeted = False  # the peer said hello on the current connection
        self.peer: str | None = None  # the name in the last hello that connected the line
        self._ids = first_id & ID_MASK
        self._pipe: int | None = None  # the current connection
        self._said_hello: int | None = None  # the connection this side said hello on
        self._keys = keys  # a sealed line's: its hellos must be fresh (see the module's docstring)
        self._nonce: bytes | None = None  # a sealed line's: drawn for _said_hello, echoed by a fresh hello
        self._echoed: set[bytes | None] = set()  # the nonces this side's hellos echoed on _said_hello
        self._owed: dict[int, None] = {}  # ids of this side's hellos on _said_hello not reported sent, in order
        self._gone: dict[int, None] = {}  # the last _GONE connections closed, oldest first
        self._taken = False
        self._closed = False
        self._heard = 0.0
        self._connections = self._refused = self._served = self._malformed = self._silent = 0
        self._stale_hellos = 0

    @property
    def state(self) -> LineState:
        if self._closed:
            return LineState.CLOSED
        if self.connected:
            return LineState.CONNECTED
        if self._taken:
            return LineState.TAKEN
        return LineState.WAITING if self._pipe is None else LineState.GREETING

    @property
    def pipe(self) -> int | None:
        return self._pipe

    def next_id(self) -> int:
        self._ids = frame_id = (self._ids + 1) & ID_MASK
        return frame_id

    # ------------------------------------------------------------------ this side speaks
    def ask(self, value: object, *, stream: bool, deadline: float, wall_deadline: float) -> Envelope:
        """Open an ask ending at ``deadline`` (the driver's clock) and return its frame."""
        return f.ask_frame(self.name, self.open_ask(stream, deadline), value, stream, wall_deadline)

    def open_ask(self, stream: bool, deadline: float) -> int:
        """:meth:`ask` without its frame: the driver sends the ask's fields (its id, the
        :func:`~consensus.hotline.frames.ask_body`, the wall-clock deadline) as they are when
        they make a common frame, and builds the envelope (:func:`frames.frame`) only when not."""
        self._ids = ask_id = (self._ids + 1) & ID_MASK
        self.asks.open(ask_id, deadline=deadline, stream=stream)
        return ask_id

    def give_up(self, ask_id: int) -> bool:
        """The asker stopped waiting (answered, cancelled, timed out): later answers are stale."""
        return self.asks.close(ask_id)

    def expire(self, now: float) -> list[int]:
        """Close the asks whose deadline passed; returns their ids."""
        return self.asks.expire(now)

    def answer(self, ask_id: int, pipe: int, kind: str, value: object) -> Envelope | None:
        """The frame answering the peer's ask ``ask_id`` (``reply``, ``chunk``, ``end`` or
        ``error``), or None when the connection it came on has closed (nobody waits)."""
        frame_id = self.answer_id(pipe, kind)
        return None if frame_id is None else f.frame(kind, self.name, frame_id, value, ask_id)

    def answer_id(self, pipe: int, kind: str) -> int | None:
        """:meth:`answer` without its frame: the frame id of the answer (counted as sent), or
        None when the connection the ask came on has closed. The driver sends the answer's
        fields as they are when they make a common frame (no envelope built)."""
        if kind not in f.ANSWER_KINDS:
            raise ValueError(f"not an answer kind: {kind!r} (expected one of {', '.join(f.ANSWER_KINDS)})")
        if pipe in self._gone:
            return None
        if kind in _FINAL:
            self._served += 1
        self._ids = frame_id = (self._ids + 1) & ID_MASK  # (next_id, inline: once per answer)
        return frame_id

    def reserve_answer(self, pipe: int) -> int | None:
        """The frame id of an answer another thread will build (:func:`frames.frame`) and
        send, or None when the connection the ask came on has closed. The answer is counted
        by :meth:`answered_elsewhere` once it went out."""
        if pipe in self._gone:
            return None
        return self.next_id()

    def answered_elsewhere(self, count: int) -> None:
        """``count`` final answers built from :meth:`reserve_answer` ids were sent."""
        self._served += count

    def closed_pipes(self) -> frozenset[int]:
        """The connections answers may no longer go to (the last few closed)."""
        return frozenset(self._gone)

    def unsendable(self, ask_id: int, exc: Exception) -> Envelope:
        """The error frame that replaces an answer that could not be encoded or sent."""
        return f.frame(f.ERROR, self.name, self.next_id(), f.unsendable_body(exc), ask_id)

    def message(self, value: object) -> Envelope:
        return f.frame(f.MSG, self.name, self.next_id(), value)

    def close(self) -> list[int]:
        """The line closes: returns the asks still open (they fail as ``closed``)."""
        self._closed = True
        self.connected = self._greeted = False
        return self.asks.fail_all()

    # ------------------------------------------------------------------ the peer speaks
    def heard(self, now: float) -> None:
        """The peer spoke in a frame another reader took (an answer to its own ask): it lives."""
        self._heard = now

    def receive(self, envelope: Envelope, pipe: int, now: float) -> Event:
        """Account one frame from connection ``pipe``; says what to do with it."""
        fields = envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline
        return self.receive_fields(fields, pipe, now)

    def receive_fields(self, fields: Fields, pipe: int, now: float) -> Event:
        """:meth:`receive` for a frame's fields (:meth:`patterns.Pair.receive_fields`: a
        reader that did not build the envelope)."""
        self._heard = now
        kind = fields[0]
        if kind in f.ANSWER_KINDS:
            ask_id = fields[4]
            if type(ask_id) is not int:
                return self._bad(f"a {kind!r} frame without the id of the ask it answers")
            action = self.asks.answer(kind, ask_id)
            if action is Action.DROP:
                return _STALE
            if action is Action.VIOLATION:
                return Answer(ask_id, "violation", f"a {kind!r} frame")
            body = fields[3]
            return Answer(ask_id, kind, f.error_body(body) if kind == f.ERROR else body)
        if kind == f.ASK:
            try:
                value, stream = f.parse_ask(fields[2], fields[3])
            except ValueError as exc:
                return self._bad(str(exc))
            return AskReceived(fields[2], value, stream, fields[5], pipe, fields[1])
        if kind == f.MSG:
            return Message(fields[3])
        if kind == f.PING:
            if self._owed and self._said_hello == self._pipe:
                return _QUIET  # no pong before this side's hello either (tick says why)
            return PingReceived(f.frame(f.PONG, self.name, self.next_id()))
        if kind == f.PONG:
            return _PONG
        if kind == f.HELLO:
            return self._hello(pipe, fields[1], fields[3])
        return self._bad(f"unknown frame kind {kind!r}")

    def _hello(self, pipe: int, sender: str, body: object) -> Event:
        if pipe in self._gone:
            return Ignored("hello on a closed connection")
        hello: Envelope | None = None
        keys = self._keys
        if keys is not None:
            kid, nonce, echo = _ids(body)
            if kid is None or nonce is None or keys.guard.find(kid) is None:  # (its key is held once it checked out)
                return self._bad(f"a hello from {sender!r} on a sealed line without its key id and nonce, or with "
                                 "an id it was not sealed under (an end of hotline 1? both ends must run 2)")  # fmt: skip
            here = self._greeted and pipe == self._pipe
            fresh = echo is not None and self._said_hello == pipe and echo == self._nonce
            if not fresh or (here and kid != keys.peer_kid):  # not of this connection, or not of its peer
                if echo is not None or here:  # (a blind hello, a peer's first on a connection, is no news)
                    self._stale_hellos += 1
                if here:  # a connection has one peer: this is a recording, replayed
                    return _STALE_HELLO
                full = self._said_hello == pipe and len(self._echoed) > _ANSWERS
                answer = None if full else self._say_hello(pipe, nonce)
                return _ANSWERED if answer is None else Rehello(answer)
            if here:
                return _HELLO_AGAIN
            hello = self._say_hello(pipe, nonce)  # (before anything goes under the session it agrees)
            keys.agree(kid)
        failed: tuple[int, ...] = ()
        if pipe != self._pipe:  # the hello came before the driver saw the connection open
            if self._greeted and self._pipe is not None:  # ... and the old one close: pair1 has one peer
                self._forget(self._pipe)
                failed = tuple(self.asks.fail_all())
            self._pipe = pipe
        elif self._greeted:
            return _HELLO_AGAIN
        self._greeted = True
        self.peer = sender
        self._taken = False
        self._connections += 1
        if keys is None:
            hello = self._say_hello(pipe)
        self.connected = not self._owed  # (_said_hello is pipe now) else once hello_sent says so
        return Greeted(hello, failed)

    def _say_hello(self, pipe: int, echo: bytes | None = None) -> Envelope | None:
        """This side's hello on ``pipe`` echoing the peer's nonce ``echo``, unless one was said
        there already (a sealed line's first hello on a connection draws its nonce)."""
        keys = self._keys
        if self._said_hello != pipe:
            self._said_hello, self._echoed, self._owed = pipe, set(), {}
            self._nonce = None if keys is None else secrets.token_bytes(8)
        elif keys is None or echo in self._echoed:
            return None
        self._echoed.add(echo)
        if keys is None:
            hello = f.frame(f.HELLO, self.name, self.next_id(), {"hotline": f.VERSION})
        else:
            body = {"hotline": f.SEALED_VERSION, "kid": keys.kid, "nonce": self._nonce, "echo": echo}
            hello = f.frame(f.HELLO, self.name, self.next_id(), body)
        self._owed[hello.id] = None
        return hello

    def hello_sent(self, hello: Envelope) -> bool:
        """The driver sent ``hello``, one this side made (:meth:`pipe_up`, :class:`Greeted`,
        :class:`Rehello`). True when that connects the line (the peer said hello on this
        connection and every hello this side made for it is out): the driver wakes whoever
        waits to send. A hello the driver gave up on (NNG took nothing for a heartbeat) is
        never reported: the line stays greeting on that connection and says nothing more
        there (no ping or pong: see :meth:`tick`) until a later one goes out: frames go in
        order, so the hellos made before it went out or never will (none is left to overtake)."""
        owed = self._owed
        if hello.id not in owed:
            return False  # (a hello of a connection this side has left)
        for earlier in tuple(owed):
            del owed[earlier]
            if earlier == hello.id:
                break
        if owed or self.connected or not self._greeted or self._said_hello != self._pipe:
            return False
        self.connected = True
        return True

    def _forget(self, pipe: int) -> None:
        """Remember ``pipe`` as closed (a frame or an answer for it is from the past)."""
        self._gone[pipe] = None
        if len(self._gone) > _GONE:
            del self._gone[next(iter(self._gone))]

    def _bad(self, reason: str) -> Malformed:
        self._malformed += 1
        return Malformed(reason)

    # ------------------------------------------------------------------ connections and time
    def pipe_up(self, pipe: int, now: float) -> Envelope | None:
        """A connection opened: returns this side's hello, unless already sent on it."""
        if pipe in self._gone or self._closed:
            return None
        if pipe != self._pipe:
            self._pipe = pipe
            self.connected = self._greeted = False
            self._heard = now
        if self._said_hello == pipe:
            return None
        return self._say_hello(pipe)  # (blind: the peer's nonce for this connection is not known yet)

    def pipe_down(self, pipe: int | None, now: float) -> Disconnected | None:
        """A connection closed. Returns what that ends, if it was the current one. ``None``:
        one the driver never saw open (it came and went between two looks)."""
        if pipe is None:
            if self._greeted or self._pipe is not None:
                return None
            pipe = -1
        else:
            self._forget(pipe)
            if pipe != self._pipe:
                return None
        if self._greeted:
            return self._end(pipe, "the connection to the peer closed", "lost")
        if self.role is Role.DIALER:
            self._taken = True
            self._refused += 1
            reason = "the listener closed the connection before saying hello: it already has a peer"
            return self._end(pipe, reason, "taken")
        return self._end(pipe, "the peer left before saying hello", "lost")

    def tick(self, now: float) -> Envelope | Disconnected | None:
        """One heartbeat: a ping to send, or the peer dropped for silence, or nothing (no
        peer, or a hello this side made for the connection is not out yet)."""
        pipe = self._pipe
        if pipe is None or self._closed:
            return None
        silent = now - self._heard
        if silent > self.heartbeat * self.missed_heartbeats:
            self._silent += 1
            self._forget(pipe)
            reason = f"the peer was silent for {silent:.1f} s ({self.missed_heartbeats} heartbeats)"
            return self._end(pipe, reason, "lost", silent=True)
        if self._owed and self._said_hello == pipe:
            # A ping now would go before this side's hello (sealed: under a session the peer has
            # not agreed). A hello given up leaves the peer hearing nothing, so it drops the
            # connection for silence and the next one greets afresh (greeted or not: two sides
            # whose hellos were both given up would keep each other alive with pings for ever).
            return None
        return f.frame(f.PING, self.name, self.next_id())

    def _end(self, pipe: int, reason: str, kind: str, *, silent: bool = False) -> Disconnected:
        """The current connection ended: no peer now, and every open ask fails with it."""
        self._pipe = None
        self.connected = self._greeted = False
        return Disconnected(pipe, reason, kind, tuple(self.asks.fail_all()), silent=silent)

    def statistics(self) -> ProtocolStatistics:
        return ProtocolStatistics(self.state, self._connections, self._refused, self._served,
                                  self._malformed, self._silent, self._stale_hellos)  # fmt: skip

    def ask_statistics(self) -> AskTableStatistics:
        return self.asks.statistics()


def _ids(body: object) -> tuple[bytes | None, bytes | None, bytes | None]:
    """A sealed line's hello body: its sender's key id and nonce (None: not there, or not 8
    bytes) and the nonce it echoes."""
    if not isinstance(body, dict):
        return None, None, None
    kid, nonce, echo = body.get("kid"), body.get("nonce"), body.get("echo")
    if type(kid) is not bytes or len(kid) != 8 or type(nonce) is not bytes or len(nonce) != 8:
        return None, None, None
    return kid, nonce, echo if type(echo) is bytes else None
