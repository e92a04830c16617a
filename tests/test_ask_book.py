"""``AskBook``: the asks of a line made outside trio (``consensus/hotline/ask_book.py``).

Against a naive reference (a dict and five counters) over random sequences of what the
asker, the reader and trio do; and from several threads at once: every ask ends exactly
once, by whoever takes it out of the table.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consensus.hotline import frames as f
from consensus.hotline.ask_book import TOP_BIT, AskBook
from consensus.hotline.events import LineState
from patterns import Fields


@dataclass
class Counts:
    opened: int = 0
    answered: int = 0
    expired: int = 0
    failed: int = 0
    malformed: int = 0

    def count_elsewhere(self, *counts: int) -> None:
        for name, n in zip(("opened", "answered", "expired", "failed", "malformed"), counts, strict=True):
            setattr(self, name, getattr(self, name) + n)


@dataclass
class Protocol:
    """What ``changed`` and ``settle`` read of a ``LineProtocol``."""

    connected: bool = False
    pipe: int | None = None
    state: LineState = LineState.WAITING
    asks: Counts = field(default_factory=Counts)


def frame(kind: str, re: Any) -> Fields:
    """A received frame's fields (kind, sender, id, body, re, deadline), as ``AskBook.take`` reads them."""
    return kind, "far", 1, "x" if kind != f.ERROR else {"type": "E", "message": "m"}, re, None


def test_asks_wait_for_a_peer_and_take_answers_only_from_its_connection() -> None:
    book: AskBook[str] = AskBook()
    protocol = Protocol()
    assert book.open("early") is None  # no peer: the trio path waits for one
    protocol.connected, protocol.pipe = True, 7
    assert book.changed(protocol) is None  # type: ignore[arg-type]
    ask_id = book.open("w")
    assert ask_id is not None and ask_id & TOP_BIT
    assert book.sent(ask_id, 40)
    assert book.take(frame(f.REPLY, ask_id), 8) is None  # another connection's: the protocol's
    assert book.take(frame(f.MSG, ask_id), 7) is None  # not an answer
    taken = book.take(frame(f.REPLY, ask_id), 7)
    assert taken is not None and taken[0] == "w" and taken[1].body == "x"
    assert book.take(frame(f.REPLY, ask_id), 7) is None  # once
    sent: list[tuple[int, int]] = []
    assert book.settle(protocol, lambda n, size: sent.append((n, size))) == 0  # type: ignore[arg-type]
    assert sent == [(1, 40)] and protocol.asks == Counts(opened=1, answered=1)


def test_a_replaced_connection_or_a_closed_line_fails_the_open_asks() -> None:
    book: AskBook[str] = AskBook()
    protocol = Protocol(connected=True, pipe=1)
    book.changed(protocol)  # type: ignore[arg-type]
    first = book.open("a")
    assert first is not None
    protocol.pipe = 2
    assert book.changed(protocol) == ("lost", "the connection to the peer closed")  # type: ignore[arg-type]
    assert book.take_all() == {first: "a"}
    second = book.open("b")
    assert second is not None and book.take(frame(f.REPLY, second), 1) is None  # the old connection
    protocol.state = LineState.CLOSED
    assert book.changed(protocol) == ("closed", "the line closed")  # type: ignore[arg-type]
    assert book.open("c") is None  # closed: the trio path says so
    assert book.take_all() == {second: "b"}
    book.settle(protocol, lambda n, size: None)  # type: ignore[arg-type]
    assert protocol.asks == Counts(opened=2, failed=2)


operations = st.lists(st.one_of(
    st.tuples(st.just("open"), st.booleans()),  # sent or not (too large: the trio path)
    st.tuples(st.just("answer"), st.sampled_from([f.REPLY, f.ERROR, f.CHUNK, f.END, f.MSG]),
              st.integers(0, 7), st.integers(1, 2)),  # kind, which ask, which connection
    st.tuples(st.just("forget"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("pipe"), st.integers(1, 2)),
), max_size=60)  # fmt: skip


@given(operations)
def test_the_book_agrees_with_a_naive_reference(ops: list[tuple[Any, ...]]) -> None:
    book: AskBook[int] = AskBook()
    protocol = Protocol(connected=True, pipe=1)
    book.changed(protocol)  # type: ignore[arg-type]
    ids: list[int] = []  # every id handed out, in order
    open_: dict[int, int] = {}  # the reference: id -> waiter, and the counts
    counts = Counts()
    for op in ops:
        if op[0] == "open":
            waiter = len(ids)
            ask_id = book.open(waiter)
            assert ask_id is not None and ask_id & TOP_BIT and ask_id not in ids
            ids.append(ask_id)
            if book.sent(ask_id, 10 if op[1] else None):
                open_[ask_id] = waiter
                counts.opened += 1
        elif op[0] == "answer" and ids:
            _, kind, which, pipe = op
            ask_id = ids[which % len(ids)]
            expected = open_.pop(ask_id) if ask_id in open_ and kind in f.ANSWER_KINDS and pipe == 1 else None
            taken = book.take(frame(kind, ask_id), pipe)
            assert (taken[0] if taken else None) == expected
            if expected is not None:
                assert taken is not None and taken[1].ask_id == ask_id
                if kind in (f.REPLY, f.ERROR):
                    counts.answered += 1
                    assert taken[1].kind == kind
                else:
                    counts.failed += 1
                    counts.malformed += 1
                    assert taken[1].kind == "violation"
        elif op[0] == "forget" and ids:
            _, which, expired = op
            ask_id = ids[which % len(ids)]
            mine = open_.pop(ask_id, None) is not None
            assert book.forget(ask_id, expired=expired) is mine
            counts.expired += mine and expired
        elif op[0] == "pipe" and op[1] != protocol.pipe:
            protocol.pipe = op[1]
            assert book.changed(protocol) is not None  # type: ignore[arg-type]
            assert book.take_all() == open_
            counts.failed += len(open_)
            open_.clear()
            protocol.pipe = 1  # back, for the next answers
            assert book.changed(protocol) is not None  # type: ignore[arg-type]
    assert book.settle(protocol, lambda n, size: None) == len(open_)  # type: ignore[arg-type]
    assert protocol.asks == counts


def test_every_ask_ends_once_with_threads_asking_and_a_reader_taking() -> None:
    book: AskBook[int] = AskBook()
    protocol = Protocol(connected=True, pipe=1)
    book.changed(protocol)  # type: ignore[arg-type]
    ended: list[int] = []  # waiters, by whoever took them out of the table
    lock = threading.Lock()
    opened: list[int] = []
    start = threading.Barrier(5)

    def asker(base: int) -> None:
        start.wait()
        for i in range(2000):
            ask_id = book.open(base + i)
            assert ask_id is not None
            book.sent(ask_id, 1)
            with lock:
                opened.append(ask_id)
            if i % 3 == 0 and book.forget(ask_id):
                with lock:
                    ended.append(base + i)

    def reader() -> None:
        start.wait()
        seen = 0
        while seen < 8000 or any(t.is_alive() for t in askers):
            with lock:
                batch, seen = opened[seen:], len(opened)
            for ask_id in batch:
                taken = book.take(frame(f.REPLY, ask_id), 1)
                if taken is not None:
                    with lock:
                        ended.append(taken[0])

    askers = [threading.Thread(target=asker, args=(n * 10_000,)) for n in range(4)]
    threads = [*askers, threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    ended += book.take_all().values()  # (none left: the reader saw every id)
    assert sorted(ended) == sorted(n * 10_000 + i for n in range(4) for i in range(2000))
