"""Hotline set-up in memory: three members' :class:`LineSetup` objects, no sockets.

A hypothesis state machine plays the drivers (a line task per ``OpenLine``, a fresh
listening address per listener, resends) and the mesh bus (every member hears every
``line`` message; the order, drops and duplicates are hypothesis's), changes the roster
(a member leaves, or comes back as a new process) and sends hostile frames. It checks
the rules of ``consensus/room/line_setup.py`` after every step, and that once the bus
delivers everything in order, every pair that wants a line ends up with exactly one:
the dialer dials what the listener listens at.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from _rooms import wire
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consensus.errors import LineError
from consensus.room import protocol as P
from consensus.room.events import Ignored, Send, Target
from consensus.room.line_setup import (
    CloseLine,
    DialLine,
    LineOutput,
    LineSetup,
    OfferAgain,
    OpenLine,
)
from patterns import Envelope, MalformedMessage

NAMES = ("ann", "bob", "cy")


@dataclass
class Task:
    """What a driver's line task holds: its role, and the address it listens at or dials."""

    attempt: int
    listen: bool
    incoming: bool
    peer_mesh: str  # the peer's mesh address (its process) when the task began
    address: str | None = None


@dataclass(eq=False)
class Node:
    """One member process: its setup, its line tasks, its mesh address."""

    setup: LineSetup
    mesh: str
    tasks: dict[str, Task] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.setup.name


class Lines(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.incarnations = itertools.count(1)
        self.addresses = itertools.count(1)
        self.nodes: dict[str, Node] = {}
        self.bus: list[Envelope] = []  # line messages in flight (every member hears each)
        self.bound: dict[tuple[str, str], set[str]] = {}  # (listener, dialer) -> addresses listened at
        for name in NAMES:
            self.nodes[name] = self.new_node(name)
        self.roster_to_all()

    def new_node(self, name: str) -> Node:
        return Node(LineSetup(name=name), f"ipc:///tmp/line-test.m-{next(self.incarnations)}")

    def roster(self) -> dict[str, str]:
        return {name: node.mesh for name, node in self.nodes.items()}

    # ------------------------------------------------------------------ the simulated driver
    def act(self, node: Node, outputs: list[LineOutput]) -> None:
        for out in outputs:
            if isinstance(out, OpenLine):
                assert out.peer not in node.tasks, "one line task per peer"
                assert out.listen == (node.name < out.peer), "the name sorting first listens"
                task = node.tasks[out.peer] = Task(
                    out.attempt, out.listen, out.incoming, node.setup.members[out.peer]
                )
                if out.listen:  # the socket binds a fresh address, and the offer goes out
                    task.address = f"ipc:///tmp/line-test.l-{next(self.addresses)}"
                    self.bound.setdefault((node.name, out.peer), set()).add(task.address)
                    node.setup.opened(out.peer, out.attempt)
                    self.send(node, node.setup.offer(out.peer, task.address))
                else:
                    self.send(node, node.setup.request(out.peer))
            elif isinstance(out, CloseLine):
                assert node.tasks[out.peer].attempt == out.attempt
                del node.tasks[out.peer]
            elif isinstance(out, DialLine):
                task = node.tasks[out.peer]
                assert task.attempt == out.attempt and not task.listen and task.address is None
                task.address = out.address
                node.setup.opened(out.peer, out.attempt)
            elif isinstance(out, OfferAgain):
                task = node.tasks[out.peer]
                assert task.attempt == out.attempt and task.listen and task.address is not None
                self.send(node, node.setup.offer(out.peer, task.address))
            else:
                assert isinstance(out, Ignored)

    def send(self, node: Node, frame: Send) -> None:
        assert frame.to is Target.MESH and frame.kind == P.LINE
        self.bus.append(wire(frame.kind, node.name, frame.body))

    def hear(self, envelope: Envelope) -> None:
        for node in self.nodes.values():
            if node.name != envelope.sender:  # bus0 does not echo
                self.act(node, node.setup.receive(envelope))

    # ------------------------------------------------------------------ the application and the room
    @rule(me=st.sampled_from(NAMES), peer=st.sampled_from(NAMES))
    def want(self, me: str, peer: str) -> None:
        node = self.nodes.get(me)
        if node is None:
            return
        if peer == me:
            with pytest.raises(ValueError, match="cannot open a hotline to itself"):
                node.setup.open(peer)
        elif peer not in node.setup.members:
            with pytest.raises(LineError, match=f"no member named {peer!r}"):
                node.setup.open(peer)
        else:
            before = node.setup.attempt(peer)
            outputs = node.setup.open(peer)
            assert (outputs == []) == (before is not None)
            self.act(node, outputs)

    @rule(name=st.sampled_from(NAMES), back=st.booleans(), everyone=st.booleans())
    def restart(self, name: str, back: bool, everyone: bool) -> None:
        """A member's process ends; ``back``: a new process takes the name at once.
        ``everyone``: the new roster reaches every member now (else only the newcomer)."""
        if back:
            self.nodes[name] = self.new_node(name)
        else:
            self.nodes.pop(name, None)
        if everyone:
            self.roster_to_all()
        else:
            self.roster_to(name)

    @rule(name=st.sampled_from(NAMES), everyone=st.booleans())
    def rejoin(self, name: str, everyone: bool) -> None:
        if name not in self.nodes:
            self.nodes[name] = self.new_node(name)
            if everyone:
                self.roster_to_all()
            else:
                self.roster_to(name)

    @rule(name=st.sampled_from(NAMES))
    def roster_to(self, name: str) -> None:
        """The current roster reaches one member (the others may hold an older one)."""
        node = self.nodes.get(name)
        if node is not None:
            self.act(node, node.setup.roster_changed(self.roster()))

    def roster_to_all(self) -> None:
        for name in self.nodes:
            self.roster_to(name)

    def connected(self, node: Node, peer: str) -> bool:
        """The line is up when the peer runs the other end at the same address."""
        task, peer_node = node.tasks[peer], self.nodes.get(peer)
        other = peer_node.tasks.get(node.name) if peer_node is not None else None
        return other is not None and other.listen != task.listen and other.address == task.address

    @rule()
    def resend(self) -> None:
        """The drivers' periodic resends while a line is not connected: the listener offers
        again, the dialer asks again (an offer from a process that has since gone is dialed
        in vain: the new process answers the request with a new offer)."""
        for node in self.nodes.values():
            for peer, task in node.tasks.items():
                if self.connected(node, peer):
                    continue
                if task.listen:
                    assert task.address is not None
                    self.send(node, node.setup.offer(peer, task.address))
                else:
                    self.send(node, node.setup.request(peer))

    # ------------------------------------------------------------------ the bus
    @precondition(lambda self: self.bus)
    @rule(i=st.integers(0, 99), keep=st.booleans(), drop=st.booleans())
    def deliver(self, i: int, keep: bool, drop: bool) -> None:
        envelope = self.bus[i % len(self.bus)] if keep else self.bus.pop(i % len(self.bus))
        if not drop:
            self.hear(envelope)

    @rule(sender=st.sampled_from((*NAMES, "zed")), to=st.sampled_from(NAMES), offer=st.booleans())
    def forged(self, sender: str, to: str, offer: bool) -> None:
        """A line message nobody may send: from no member, from the recipient's own name,
        or with the roles swapped. The recipient counts it and nothing else changes."""
        node = self.nodes.get(to)
        if node is None:
            return
        allowed = sender in node.setup.members and sender != to and offer == (sender < to)
        if allowed:
            return
        before = (node.setup.lines, dict(node.setup.counts))
        body = P.line_body(to, "ipc:///tmp/line-test.forged" if offer else None)
        (out,) = node.setup.receive(wire(P.LINE, sender, body))
        assert isinstance(out, Ignored)
        assert node.setup.lines == before[0]
        assert node.setup.counts["malformed"] == before[1]["malformed"] + 1

    @rule(body=st.one_of(st.none(), st.integers(), st.dictionaries(
        st.sampled_from(["to", "address"]),
        st.one_of(st.text(max_size=3), st.integers(), st.sampled_from(["tcp://h:0", "file:///x"])),
    )))  # fmt: skip
    def garbage(self, body: Any) -> None:
        """A body that is not a line message: malformed at every member, nothing else."""
        envelope = wire(P.LINE, "ann", body)
        try:
            P.parse_line(envelope)
        except MalformedMessage:
            for node in self.nodes.values():
                before = node.setup.counts["malformed"]
                (out,) = node.setup.receive(envelope)
                assert isinstance(out, Ignored) and node.setup.counts["malformed"] == before + 1
            return
        # a well-formed one: the rules above send those

    @rule()
    def settle(self) -> None:
        """Deliver everything in order, resend, and again until quiet: then each pair with a
        line on either side has exactly one, and the dialer dials the listener's address."""
        self.roster_to_all()
        for _ in range(4):
            while self.bus:
                self.hear(self.bus.pop(0))
            self.resend()
        while self.bus:
            self.hear(self.bus.pop(0))
        for node in self.nodes.values():
            for peer, task in node.tasks.items():
                other = self.nodes[peer].tasks.get(node.name)
                assert other is not None, (node.name, peer)
                assert task.listen != other.listen
                listener, dialer = (task, other) if task.listen else (other, task)
                assert dialer.address == listener.address

    # ------------------------------------------------------------------ invariants
    @invariant()
    def driver_mirrors_the_setup(self) -> None:
        for node in self.nodes.values():
            assert node.setup.lines == {peer: task.attempt for peer, task in node.tasks.items()}

    @invariant()
    def lines_only_to_members_present_as_the_same_process(self) -> None:
        for node in self.nodes.values():
            for peer, task in node.tasks.items():
                assert peer != node.name and peer in node.setup.members  # as far as it knows
                assert task.peer_mesh == node.setup.members[peer], "a line to a process that has gone"

    @invariant()
    def a_dialer_dials_only_what_its_peer_listened_at(self) -> None:
        for node in self.nodes.values():
            for peer, task in node.tasks.items():
                if not task.listen and task.address is not None:  # never a forged address
                    assert task.address in self.bound.get((peer, node.name), set()), (node.name, task)


Lines.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
TestLines = Lines.TestCase


def test_three_members_set_up_their_lines_in_order() -> None:
    """The straight path: ann listens to bob and cy, bob listens to cy; each line is made
    once, counted once on each side, and a duplicate request only repeats the offer."""
    roster = {"ann": "ipc:///a", "bob": "ipc:///b", "cy": "ipc:///c"}
    setups = {name: LineSetup(name=name) for name in roster}
    for setup in setups.values():
        assert setup.roster_changed(roster) == []
    (open_cy,) = setups["cy"].open("ann")
    assert open_cy == OpenLine("ann", 1, listen=False, incoming=False)
    request = setups["cy"].request("ann")
    assert request.body == {"to": "ann"}
    heard = wire(P.LINE, "cy", request.body)
    assert setups["bob"].receive(heard) == []  # addressed to ann
    assert setups["ann"].receive(wire("other", "cy", request.body)) == []  # not a line message
    (open_ann, again) = setups["ann"].receive(heard)
    assert open_ann == OpenLine("cy", 1, listen=True, incoming=True) and again == OfferAgain("cy", 1)
    assert setups["ann"].receive(heard) == [OfferAgain("cy", 1)]  # a duplicate request
    offer = setups["ann"].offer("cy", "ipc:///a.l-1")
    (dial,) = setups["cy"].receive(wire(P.LINE, "ann", offer.body))
    assert dial == DialLine("ann", 1, "ipc:///a.l-1")
    assert setups["cy"].receive(wire(P.LINE, "ann", offer.body)) == []  # a duplicate offer
    for name, peer in (("ann", "cy"), ("cy", "ann")):
        setups[name].opened(peer, 1)
        assert setups[name].counts == {"opened": 1, "malformed": 0}
    moved = setups["ann"].offer("cy", "ipc:///a.l-2")  # ann's line was made again elsewhere
    assert setups["cy"].receive(wire(P.LINE, "ann", moved.body)) == [
        CloseLine("ann", 1),
        OpenLine("ann", 2, listen=False, incoming=True),
        DialLine("ann", 2, "ipc:///a.l-2"),
    ]
    assert setups["cy"].roster_changed(roster | {"ann": "ipc:///a2"}) == [CloseLine("ann", 2)]
    setups["cy"].ended("ann", 2)  # the driver's task ends after the close: nothing more happens
    assert setups["cy"].lines == {}
