"""Many machines: rooms, work, hotlines and large payloads between hosts of a namespace bed.

Every process here runs on a host of :class:`bench.hosts.Bed`: its own network namespace on
one switch, its own ``/dev/shm``. The test process drives them through their stdin and
stdout only (it is on none of the hosts). A host is cut off by taking its switch port down.
Without root or ``ip netns`` every test here is skipped, with the reason in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, read_line, tell

from bench import hosts

REASON = hosts.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"multi-host tests need namespaces: {REASON}")

MIB = 1 << 20


class Started:
    """The processes one test started on the bed: all killed at its end, whatever happened."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def on(
        self, host: hosts.Host, script: str, *args: str, secret: str | None = None
    ) -> subprocess.Popen[str]:
        """``script`` on ``host``; with ``secret``, that secret in its NNGC_SECRET."""
        env = None if secret is None else {**os.environ, "NNGC_SECRET": secret}
        proc = host.popen([sys.executable, str(ROOT / "tests" / script), *args], cwd=ROOT, env=env)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            hosts.end(proc)


@pytest.fixture(scope="module")
def bed() -> Iterator[hosts.Bed]:
    with hosts.Bed(4) as made:
        yield made


@pytest.fixture
def started(bed: hosts.Bed) -> Iterator[Started]:
    group = Started()
    try:
        yield group
    finally:
        group.close()
        for host in bed.hosts:  # a test that failed while a host was cut off
            host.mend()


async def expect(proc: subprocess.Popen[str], prefix: str) -> str:
    """The next line of ``proc`` starting with ``prefix`` (other lines are passed over)."""
    while True:
        line = await read_line(proc)
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


async def test_room_with_members_on_three_hosts(bed: hosts.Bed, started: Started) -> None:
    h0, *others = bed.hosts
    address = f"tcp://{h0.ip}:7100"
    room = started.on(h0, "room_host.py", address)
    assert await read_line(room) == "up"
    members = {f"m{i}": started.on(h, "room_agent.py", address, f"m{i}") for i, h in enumerate(others, 1)}
    for member in members.values():
        assert await expect(member, "joined") == ""
    tell(room, "members 3")
    assert sorted(json.loads(await expect(room, "members"))) == ["m1", "m2", "m3"]

    tell(room, "poll")
    answers, missing = (await expect(room, "polled")).split(" ")
    assert sorted(json.loads(answers)) == ["m1", "m2", "m3"] and json.loads(missing) == []

    tell(room, 'vote ["left", "right"]')  # every agent picks the first option
    assert await expect(room, "voted") == '"left" []'
    for member in members.values():
        assert await expect(member, "decision") == '"left"'

    for member in members.values():  # broadcasts between members go over their mesh
        tell(member, "mesh")
        assert await expect(member, "mesh ok") == ""
    tell(members["m1"], 'say {"from": "m1"}')
    tell(room, 'say {"from": "host"}')
    for name in ("m2", "m3"):
        heard = {await expect(members[name], "message"), await expect(members[name], "message")}
        assert heard == {'m1 {"from": "m1"}', 'host {"from": "host"}'}

    members["m3"].kill()  # its host stays up: the kernel closes the connections
    tell(room, "poll")
    answers, missing = (await expect(room, "polled")).split(" ")
    assert sorted(json.loads(answers)) == ["m1", "m2"]
    for member in (room, members["m1"], members["m2"]):
        tell(member, "quit")


@pytest.mark.parametrize("secret", [None, "the team's secret"])
async def test_work_survives_a_worker_host_cut_off(
    bed: hosts.Bed, started: Started, secret: str | None
) -> None:
    """A host cut off closes no connection: its worker's beats stop, and after three of them
    (0.2 s each here) the dispatcher redoes what it held, long before the lease (30 s) or
    the claim timeout (10 s) would. The worker cut off holds tasks it will never finish (it
    stalls after 1): the host is cut once it holds them, however fast the others go."""
    h0, h1, h2 = bed.hosts[:3]
    address, count = f"tcp://{h0.ip}:{7200 if secret is None else 7210}", 40
    keyed = ("--secret-env",) if secret else ()
    dispatcher = started.on(h0, "bed_agent.py", "dispatch", address, "--tasks", str(count), "--lease", "30",
                            "--claim-timeout", "10", *keyed, secret=secret)  # fmt: skip
    assert await read_line(dispatcher) == "ready"
    beating = ("--concurrency", "2", "--heartbeat", "0.2", *keyed)
    workers = [
        started.on(h, "work_agent.py", address, f"w{i}", *beating, *stall, secret=secret)
        for i, h, stall in ((1, h1, ()), (2, h2, ("--stall-after", "1")))
    ]
    for worker in workers:
        assert await read_line(worker) == "ready"
    assert await read_line(dispatcher) == "workers"
    tell(dispatcher, "go")
    await expect(workers[1], "stalled")
    h2.cut()  # mid-stream: w2 holds claimed tasks (more may be on their way to it)
    outcomes: dict[int, tuple[str, str, int]] = {}
    while len(outcomes) < count:
        n, ok, by, attempts = (await expect(dispatcher, "outcome")).split(" ")
        assert int(n) not in outcomes, f"task {n} has two outcomes"
        outcomes[int(n)] = (ok, by, int(attempts))
    counters = json.loads(await expect(dispatcher, "finished"))
    h2.mend()
    assert sorted(outcomes) == list(range(count))
    assert all(ok == "True" for ok, _, _ in outcomes.values()), outcomes
    redone = {n: attempts for n, (_, _, attempts) in outcomes.items() if attempts > 1}
    assert all(attempts == 2 for attempts in redone.values()), f"tasks redone more than once: {redone}"
    assert all(by == "w1" for n, (_, by, _) in outcomes.items() if n in redone)
    # w2 went silent holding claimed tasks: taken as gone once, its tasks redone by w1
    assert counters["silent"] == 1 and counters["lost"] >= 1, counters
    assert counters["redelivered"] >= len(redone) >= 1, (counters, redone)
    assert counters["unauthenticated"] == 0
    tell(dispatcher, "workers 2")  # the link is back: w2 finds its connections closed, dials, says hello
    back = json.loads(await expect(dispatcher, "workers"))
    assert back["names"] == ["w1", "w2"] and back["joined"] == 3, back


async def test_a_room_with_a_secret_across_hosts(bed: hosts.Bed, started: Started) -> None:
    h0, h1, h2, h3 = bed.hosts
    address, secret = f"tcp://{h0.ip}:7700", "the room's secret"
    room = started.on(h0, "room_host.py", address, "--secret-env", secret=secret)
    assert await read_line(room) == "up"
    members = {
        f"m{i}": started.on(h, "room_agent.py", address, f"m{i}", "--secret-env", secret=secret)
        for i, h in ((1, h1), (2, h2))
    }
    guesser = started.on(h3, "room_agent.py", address, "m3", "--secret-env", "--join-timeout", "5",
                         secret="a wrong guess")  # fmt: skip
    for member in members.values():
        assert await expect(member, "joined") == ""
    assert (await read_line(guesser)).startswith("unauthenticated")
    tell(room, "members 2")
    assert sorted(json.loads(await expect(room, "members"))) == ["m1", "m2"]
    tell(room, "poll")
    answers, missing = (await expect(room, "polled")).split(" ")
    assert sorted(json.loads(answers)) == ["m1", "m2"] and json.loads(missing) == []
    tell(room, 'say {"from": "host"}')
    for member in members.values():
        assert await expect(member, "message") == 'host {"from": "host"}'
    for proc in (room, *members.values()):
        tell(proc, "quit")


async def test_a_tls_room_across_hosts(bed: hosts.Bed, started: Started, short_tmp: Path) -> None:
    trustme = pytest.importorskip("trustme", reason="certificates for the tls room come from trustme")
    h0, h1, h2 = bed.hosts[:3]
    ca = trustme.CA()  # files under /tmp: every host mounts its own /dev/shm only, /tmp is the machine's
    ca.cert_pem.write_to_path(str(short_tmp / "ca.pem"))
    for name in ("host", "m1", "m2"):
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
            str(short_tmp / f"{name}.pem")
        )
    address = f"tls+tcp://{h0.ip}:7800"
    room = started.on(h0, "room_host.py", address, "--tls", str(short_tmp))
    assert await read_line(room) == "up"
    members = {f"m{i}": started.on(h, "room_agent.py", address, f"m{i}", "--tls", str(short_tmp))
               for i, h in ((1, h1), (2, h2))}  # fmt: skip
    for member in members.values():
        assert await expect(member, "joined") == ""
    tell(room, "members 2")
    assert sorted(json.loads(await expect(room, "members"))) == ["m1", "m2"]
    tell(room, "poll")
    answers, missing = (await expect(room, "polled")).split(" ")
    assert sorted(json.loads(answers)) == ["m1", "m2"] and json.loads(missing) == []
    for member in members.values():  # the members' own mesh link is tls too, across the switch
        tell(member, "mesh")
        assert await expect(member, "mesh ok") == ""
    tell(members["m1"], 'say {"over": "tls"}')
    assert await expect(members["m2"], "message") == 'm1 {"over": "tls"}'
    for proc in (room, *members.values()):
        tell(proc, "quit")


async def test_hotline_between_two_hosts_survives_a_cut(bed: hosts.Bed, started: Started) -> None:
    h1, h2 = bed.hosts[1:3]
    address = f"tcp://{h1.ip}:7300"
    listener = started.on(h1, "hotline_agent.py", address, "--listen", "--name", "h1", "--heartbeat", "0.5")
    asker = started.on(h2, "bed_agent.py", "ask", address)
    assert await read_line(listener) == "ready"
    assert await read_line(asker) == "ready"
    tell(asker, 'ask {"q": 1}')
    assert json.loads(await expect(asker, "answer")) == {"echo": {"q": 1}, "by": "h1"}

    h2.cut()
    tell(asker, 'ask {"q": 2}')
    assert await expect(asker, "error") in {"Timeout", "PeerLost"}
    h2.mend()
    tell(asker, 'until-answered {"q": 3}')
    answer, _, _failed = (await expect(asker, "answer")).partition(" after ")
    assert json.loads(answer) == {"echo": {"q": 3}, "by": "h1"}
    for proc in (asker, listener):
        tell(proc, "quit")


@pytest.mark.parametrize("where", ["two hosts", "one host"])
async def test_large_payload_goes_inline_between_hosts(bed: hosts.Bed, started: Started, where: str) -> None:
    receiver_host = bed.hosts[1]
    sender_host = bed.hosts[2] if where == "two hosts" else receiver_host
    address = f"tcp://{receiver_host.ip}:{7400 if where == 'two hosts' else 7401}"
    receiver = started.on(receiver_host, "bed_agent.py", "pair-listen", address)
    assert await read_line(receiver) == "ready"
    sender = started.on(sender_host, "bed_agent.py", "pair-send", address, "16")
    assert await read_line(sender) == "ready"
    digest = await expect(sender, "digest")
    length, got_digest, received = (await expect(receiver, "got")).split(" ")
    assert int(length) == 16 * MIB and got_digest == digest
    sent = int(await expect(sender, "sent"))
    if where == "two hosts":  # no same-host proof across machines: the bytes travel in the frame
        assert int(received) > 16 * MIB and sent > 16 * MIB
    else:  # same /dev/shm: the frame carries a reference only
        assert int(received) < MIB and sent < MIB
    for proc in (sender, receiver):
        tell(proc, "quit")


async def test_a_room_is_found_by_name_across_hosts(bed: hosts.Bed, started: Started) -> None:
    pytest.importorskip("zeroconf", reason="discovery needs the zeroconf package (the discovery extra)")
    h0, h1, h2 = bed.hosts[:3]
    address = f"tcp://{h0.ip}:7600"
    room = started.on(h0, "room_host.py", address, "--advertise", "team-a")
    assert await read_line(room) == "up"
    member = started.on(h1, "room_agent.py", "mdns://team-a", "m1")
    assert await expect(member, "joined") == ""
    tell(room, "members 1")
    assert json.loads(await expect(room, "members")) == ["m1"]
    finder = started.on(h2, "bed_agent.py", "discover", "-")
    assert await read_line(finder) == "ready"
    tell(finder, "discover")
    assert json.loads(await expect(finder, "rooms")) == [["team-a", address, False, False]]
    tell(room, "quit")  # the room withdraws its record as it closes
    assert await expect(member, "closed") == ""
    tell(finder, "discover")
    assert json.loads(await expect(finder, "rooms")) == []


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split(" ", 1)[0] for line in listed.stdout.splitlines()}


def test_a_bed_leaves_nothing_behind() -> None:
    with hosts.Bed(2) as made:
        keeper = made.hosts[0].keeper
        assert keeper is not None
        sleeper = made.hosts[1].popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        assert {h.netns for h in made.hosts} | {made.switch} <= _namespaces()
    assert not any(name.startswith(made.tag) for name in _namespaces())
    assert keeper.poll() is not None and sleeper.poll() is not None


def test_the_bed_of_a_killed_run_is_swept() -> None:
    code = "import sys; from bench import hosts; bed = hosts.Bed(2); print(bed.tag, flush=True); sys.stdin.read()"
    maker = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert maker.stdout is not None
        tag = maker.stdout.readline().strip()
        assert any(name.startswith(tag) for name in _namespaces())
    finally:
        maker.kill()  # no clean-up ran: its namespaces and keepers are left
        maker.wait()
        hosts.end(maker)
    assert sorted(name for name in hosts.sweep() if name.startswith(tag)) == [
        f"{tag}-h0",
        f"{tag}-h1",
        f"{tag}-sw",
    ]
    assert not any(name.startswith(tag) for name in _namespaces())
