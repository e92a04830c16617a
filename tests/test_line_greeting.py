"""The greeting of a hotline's sans-IO end (``LineProtocol``), by example: connected,
refused (``TAKEN``) while NNG dials again, a listener that is never taken, silence past
the heartbeats, a hello on a new connection, closing. The conversations are in
``tests/test_line_protocol.py``.
"""

from __future__ import annotations

from consensus.hotline.events import Disconnected, Greeted, Ignored, LineState, PingReceived, Role
from consensus.hotline.protocol import LineProtocol
from patterns import Envelope

HEARTBEAT, MISSED = 1.0, 3


def new_side(side: str) -> LineProtocol:
    role = Role.LISTENER if side == "L" else Role.DIALER
    return LineProtocol(role, side, heartbeat=HEARTBEAT, missed_heartbeats=MISSED)


# ---------------------------------------------------------------- the greeting, by example
def test_a_dialer_refused_before_hello_is_taken_until_a_hello_comes() -> None:
    d = new_side("D")
    assert d.statistics().state is LineState.WAITING and not d.connected
    hello = d.pipe_up(7, 0.0)
    assert hello is not None and hello.kind == "hello" and d.state is LineState.GREETING
    assert d.pipe_up(7, 0.0) is None  # one hello per connection
    ask = d.ask("x", stream=False, deadline=5.0, wall_deadline=1e9)
    event = d.pipe_down(7, 0.1)  # the listener closed it at once: it has another peer
    assert event == Disconnected(7, event.reason if event else "", "taken", (ask.id,))
    assert event is not None and "already has a peer" in event.reason
    assert d.state is LineState.TAKEN and not d.connected
    assert d.pipe_up(8, 0.2) is not None and d.state is LineState.TAKEN  # NNG dials again: still taken
    assert d.pipe_down(None, 0.3) is None  # (a connection it never saw, while it has one: nothing)
    assert d.pipe_down(8, 0.3) is not None
    assert d.pipe_down(None, 0.4) is not None and d.statistics().refused == 3  # one it never saw
    own = d.pipe_up(9, 0.5)
    greeted = d.receive(Envelope("hello", "L", 1, {"hotline": 1}), 9, 0.6)
    assert greeted == Greeted(None, ())  # its own hello was made at pipe_up ...
    assert d.state is LineState.GREETING and not d.connected  # ... and is not out yet: no ask may go
    assert own is not None and d.hello_sent(own) is True  # the driver sent it: connected
    assert d.hello_sent(own) is False  # (reported once)
    assert d.state is LineState.CONNECTED and d.connected and d.statistics().connections == 1
    assert d.receive(Envelope("hello", "L", 2, {"hotline": 2}), 9, 0.6) == Ignored("hello repeated")
    assert isinstance(d.receive(Envelope("hello", "L", 3), 7, 0.6), Ignored)  # from a closed connection


def test_a_listener_is_never_taken_and_answers_a_hello_that_came_first() -> None:
    listener = new_side("L")
    event = listener.receive(Envelope("hello", "D", 1, {"hotline": 1}), 4, 0.0)  # before pipe_up
    assert isinstance(event, Greeted) and event.hello is not None and event.hello.kind == "hello"
    assert listener.pipe_up(4, 0.0) is None and not listener.connected  # its hello is not out yet
    assert listener.hello_sent(event.hello) and listener.connected
    lost = listener.pipe_down(4, 1.0)
    assert lost is not None and lost.kind == "lost" and listener.state is LineState.WAITING
    listener.pipe_up(5, 1.0)
    lost = listener.pipe_down(5, 1.1)  # a dialer that left before its hello
    assert lost is not None and lost.kind == "lost" and listener.state is LineState.WAITING


def test_silence_past_the_heartbeats_ends_the_connection_and_its_asks() -> None:
    d = new_side("D")
    assert d.tick(0.0) is None  # no connection: nothing to do
    own = d.pipe_up(1, 0.0)
    d.receive(Envelope("hello", "L", 1), 1, 0.0)
    assert own is not None and d.hello_sent(own)
    ask = d.ask("x", stream=True, deadline=60.0, wall_deadline=1e9)
    ping = d.tick(HEARTBEAT * MISSED)  # silent for exactly its heartbeats: still fine
    assert isinstance(ping, Envelope) and ping.kind == "ping"
    out = d.tick(HEARTBEAT * MISSED + 0.5)
    assert isinstance(out, Disconnected) and out.silent and out.asks == (ask.id,) and out.pipe == 1
    assert "silent for 3.5 s" in out.reason and d.state is LineState.WAITING
    assert d.statistics().silent_disconnects == 1
    assert d.pipe_down(1, 4.0) is None  # NNG confirms later: already handled
    assert d.answer(99, 1, "reply", "late") is None  # that connection is gone: nobody waits


def test_closing_fails_the_open_asks() -> None:
    d = new_side("D")
    ids = [d.ask(i, stream=bool(i % 2), deadline=9.0, wall_deadline=1e9).id for i in range(3)]
    assert d.close() == ids and d.state is LineState.CLOSED and d.tick(20.0) is None


def test_a_hello_on_a_new_connection_ends_the_old_one_not_yet_noticed_closed() -> None:
    """pair1 has one peer: a hello on another connection means the old one closed, even
    before NNG's notice of it; the asks sent on it fail at once."""
    d = new_side("D")
    d.pipe_up(1, 0.0)
    d.receive(Envelope("hello", "L", 1), 1, 0.0)
    ask = d.ask("x", stream=False, deadline=60.0, wall_deadline=1e9)
    event = d.receive(Envelope("hello", "L", 2), 2, 1.0)
    assert isinstance(event, Greeted) and event.lost == (ask.id,) and event.hello is not None
    assert not d.connected and d.pipe == 2 and d.statistics().connections == 2  # its hello not out yet
    assert d.hello_sent(event.hello) and d.connected
    assert d.pipe_down(1, 1.1) is None and d.connected  # NNG's late notice changes nothing
    assert d.answer(7, 1, "reply", "late") is None


def test_a_line_is_connected_only_once_every_hello_it_made_for_the_connection_is_out() -> None:
    """The peer's hello came before this side saw the connection (its hello answers it) and
    then the driver's own hello for it: connected at the last one reported sent; a hello of
    a connection left counts for nothing (``docs/hotline.md`` 3, *The greeting*)."""
    listener = new_side("L")
    old = listener.pipe_up(1, 0.0)
    assert old is not None and listener.pipe_down(1, 0.5) is not None
    event = listener.receive(Envelope("hello", "D", 1, {"hotline": 1}), 2, 1.0)  # before pipe_up(2)
    assert isinstance(event, Greeted) and event.hello is not None
    assert listener.state is LineState.GREETING and not listener.connected
    assert listener.hello_sent(old) is False and not listener.connected  # (connection 1's)
    assert listener.hello_sent(event.hello) is True and listener.state is LineState.CONNECTED
    assert listener.pipe_up(2, 1.0) is None and listener.connected  # said already: nothing owed


def test_no_ping_or_pong_goes_before_this_sides_hello_on_a_greeted_connection() -> None:
    """Greeted but its own hello not out: no ping, no pong (on a sealed line they would go
    under a session the peer has not agreed; a side whose hello never goes out is silent
    to its peer, which drops it); its own silence check still runs."""
    d = new_side("D")
    event = d.receive(Envelope("hello", "L", 1), 3, 0.0)  # before pipe_up: its hello answers it
    assert isinstance(event, Greeted) and event.hello is not None
    assert d.tick(HEARTBEAT) is None
    assert isinstance(d.receive(Envelope("ping", "L", 2), 3, 1.0), Ignored)  # no pong either
    d.hello_sent(event.hello)
    ping = d.tick(2 * HEARTBEAT)
    assert isinstance(ping, Envelope) and ping.kind == "ping"
    assert isinstance(d.receive(Envelope("ping", "L", 3), 3, 2.0), PingReceived)
    stuck = new_side("D")
    stuck.receive(Envelope("hello", "L", 1), 3, 0.0)  # its hello never goes out
    out = stuck.tick(HEARTBEAT * MISSED + 0.5)
    assert isinstance(out, Disconnected) and out.silent and stuck.state is LineState.WAITING


def test_hellos_given_up_on_both_sides_end_the_connection_for_silence() -> None:
    """Both sides' hellos given up (NNG took neither for a heartbeat): neither is greeted, so
    neither may keep the other alive with pings and pongs (each would hear the other for
    ever, the line greeting and its asks waiting to their timeouts); both fall silent, and
    the connection ends after the missed heartbeats, the next one greeting afresh."""
    d, listener = new_side("D"), new_side("L")
    assert d.pipe_up(1, 0.0) is not None and listener.pipe_up(1, 0.0) is not None  # neither goes out
    ends = {"D": d, "L": listener}
    ended: list[str] = []
    now = 0.0
    while not ended and now < 10 * HEARTBEAT * MISSED:
        now += HEARTBEAT
        for name, end in ends.items():
            out = end.tick(now)
            if isinstance(out, Disconnected):
                ended.append(name)
            elif out is not None:  # a ping: the other side hears it, and may answer
                peer = ends["L" if name == "D" else "D"]
                event = peer.receive(out, 1, now)
                if isinstance(event, PingReceived):
                    end.receive(event.pong, 1, now)
    assert ended and now <= HEARTBEAT * (MISSED + 1), (ended, now, d.state, listener.state)
