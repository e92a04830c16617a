"""The ``nngc`` command line, run as real processes: a host, command agents, the observer
commands (members, ask), work sharing, exit codes and errors.

Every child is started through :class:`Cli` (killed at teardown); waits go through
reading its output under the test's trio deadline, never through sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio
from conftest import ROOT, _remember, free_tcp_port, free_tcp_port_run, read_line

import consensus

SH_AGENT = f"sh {ROOT / 'tests' / 'cli_agent.sh'}"
PY_AGENT = f"{sys.executable} {ROOT / 'tests' / 'cli_agent.py'}"
# Members are dropped after 3 silent beats: on a loaded machine a child process (or this
# one) can stall for a second or more, and no test here waits for a heartbeat to notice
# anything (departures are told, or seen as closed connections), so the beat is slow.
HEARTBEAT = 2.0


class Cli:
    """``nngc`` processes of one test (``python -m consensus``, this worktree first on the path)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "consensus", *args]

    def start(self, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(*args), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=self.env,
        )  # fmt: skip
        self.procs.append(proc)
        _remember(proc.pid)
        return proc

    async def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run one command to its end (the test's deadline bounds it: the child is killed then)."""
        proc = self.start(*args, stdin=input is not None)
        out, err = await trio.to_thread.run_sync(proc.communicate, input, abandon_on_cancel=True)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def cli() -> Iterator[Cli]:
    group = Cli()
    try:
        yield group
    finally:
        group.close()


async def events_until(proc: subprocess.Popen[str], done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read ``nngc host --json`` events until one satisfies ``done``; returns it."""
    while True:
        event: dict[str, Any] = json.loads(await read_line(proc))
        if done(event):
            return event


async def start_host(cli: Cli, addr: str) -> subprocess.Popen[str]:
    host = cli.start("host", addr, "--json", "--heartbeat", str(HEARTBEAT))
    await events_until(host, lambda e: e["event"] == "started")
    return host


async def wait_joined(host: subprocess.Popen[str], *names: str) -> None:
    await events_until(host, lambda e: e["event"] == "joined" and set(names) <= set(e["members"]))


# ---------------------------------------------------------------------------- host and join
async def test_host_shows_members_join_and_sigterm_leaves_cleanly(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    host = await start_host(cli, addr)
    alice = cli.start("join", addr, "--name", "alice", "--exec", SH_AGENT)
    cli.start("join", addr, "--name", "bob", "--exec", PY_AGENT, "--json-io")
    await wait_joined(host, "alice", "bob")

    listed = await cli.run("members", addr, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"alice", "bob"} <= set(json.loads(listed.stdout)["members"])
    text = await cli.run("members", addr)
    assert {"alice", "bob"} <= set(text.stdout.split())

    alice.send_signal(signal.SIGTERM)
    left = await events_until(host, lambda e: e["event"] == "left" and e["name"] == "alice")
    assert "alice" not in left["members"]
    assert await trio.to_thread.run_sync(alice.wait) == 0

    host.send_signal(signal.SIGINT)
    assert (await events_until(host, lambda e: e["event"] == "stopped")) == {"event": "stopped"}
    assert await trio.to_thread.run_sync(host.wait) == 0


async def test_host_view_is_plain_lines_when_piped(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    host = cli.start("host", addr, "--name", "hall")
    assert (await read_line(host)).startswith(f"hosting {addr} as 'hall'")
    cli.start("join", addr, "--name", "carol", "--exec", SH_AGENT)
    assert await read_line(host) == "+ carol joined (1 present)"


async def test_exec_agents_answer_polls_and_votes(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    async with consensus.host(addr, heartbeat=HEARTBEAT) as room:
        cli.start("join", addr, "--name", "sh", "--exec", SH_AGENT)
        cli.start("join", addr, "--name", "py", "--exec", PY_AGENT, "--json-io")
        cli.start("join", addr, "--name", "served", "--serve", f"{PY_AGENT} --serve")
        await room.wait_for_members(3)

        result = await room.poll("status?", timeout=20)
        assert dict(result.answers) == {
            "sh": "sh got status?",
            "py": {"py": "status?", "kind": "poll"},
            "served": {"py": "status?", "kind": "poll"},
        }
        decision = await room.vote("ship?", options=["yes", "no"], timeout=20)
        assert {name: b.choice for name, b in decision.ballots.items()} == {"sh": "yes", "py": "no", "served": "no"}
        assert decision.ballots["py"].confidence == 0.75 and decision.ballots["py"].reason == "python agent"
        assert decision.outcome == "no"
        failed = await room.poll("fail", timeout=20)
        assert failed.errors["served"].message == "cannot do fail"


async def test_failing_and_hanging_commands_are_that_members_errors(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    async with consensus.host(addr, heartbeat=HEARTBEAT) as room:
        cli.start("join", addr, "--name", "sh", "--exec", SH_AGENT)
        cli.start("join", addr, "--name", "py", "--exec", PY_AGENT, "--json-io", "--handler-timeout", "1")
        await room.wait_for_members(2)

        failed = await room.poll("fail", timeout=20)
        assert not failed.answers
        assert "exited with status 3: cannot do fail" in failed.errors["sh"].message
        assert "exited with status 3: cannot do fail" in failed.errors["py"].message

        hung = await room.poll("hang", timeout=5, quorum=None)
        assert hung.answers["sh"] == "sh got hang"
        assert "did not answer within 1 s" in hung.errors["py"].message
        # the member lives on and answers the next request
        again = await room.poll("again", timeout=20)
        assert again.answers["py"] == {"py": "again", "kind": "poll"}


async def test_ask_a_member_on_a_hotline(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    host = await start_host(cli, addr)
    cli.start("join", addr, "--name", "alice", "--exec", SH_AGENT)
    await wait_joined(host, "alice")
    asked = await cli.run("ask", addr, "alice", "hello there")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == "sh got hello there\n"
    as_json = await cli.run("ask", addr, "alice", "[1, 2]", "--json-value", "--json")
    assert json.loads(as_json.stdout) == {"member": "alice", "answer": "sh got [1, 2]"}


def listening_ports() -> set[int]:
    """The tcp ports something on this machine listens at (from /proc/net/tcp and tcp6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as file:
            for row in file.read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                if state == "0A":  # LISTEN
                    ports.add(int(local.rpartition(":")[2], 16))
    return ports


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_join_listens_at_the_ports_it_is_given(cli: Cli, room_address: Any, transport: str) -> None:
    mesh, lines = free_tcp_port(), free_tcp_port_run(2)
    addr = room_address("tcp") if transport == "tcp" else f"ws://127.0.0.1:{free_tcp_port()}/room"
    host = await start_host(cli, addr)
    cli.start("join", addr, "--name", "alice", "--exec", SH_AGENT, "--listen", f"{transport}://0.0.0.0:{mesh}",
              "--line-ports", f"{lines}-{lines + 1}")  # fmt: skip
    await wait_joined(host, "alice")
    assert mesh in listening_ports()
    asked = await cli.run("ask", addr, "alice", "hi")  # a hotline between alice and the asker
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == "sh got hi\n"
    polled = await cli.run("poll", addr, "ready?", "--json", "--timeout", "20")
    assert polled.returncode == 0 and json.loads(polled.stdout)["answers"] == {"alice": "sh got ready?"}


# ---------------------------------------------------------------------------- poll and vote
async def test_poll_and_vote_from_the_command_line(cli: Cli, room_address: Any) -> None:
    addr = room_address("tcp")
    host = await start_host(cli, addr)
    cli.start("join", addr, "--name", "sh", "--exec", SH_AGENT)
    cli.start("join", addr, "--name", "py", "--exec", PY_AGENT, "--json-io")
    await wait_joined(host, "sh", "py")

    polled = await cli.run("poll", addr, "ready?", "--json", "--timeout", "20")
    assert polled.returncode == 0, polled.stderr
    result = json.loads(polled.stdout)
    assert result["answers"] == {"py": {"py": "ready?", "kind": "poll"}, "sh": "sh got ready?"}
    assert result["missing"] == [] and result["errors"] == {}
    text = await cli.run("poll", addr, "ready?", "--timeout", "20")
    assert text.stdout.splitlines()[:2] == ['py: {"py": "ready?", "kind": "poll"}', "sh: sh got ready?"]

    # sh votes for "yes", py for the last option: with three options, nobody has a majority
    split = await cli.run("vote", addr, "ship?", "--options", "yes,no,later", "--json", "--timeout", "20")
    assert split.returncode == 1, split.stderr
    assert json.loads(split.stdout)["decided"] is False
    # ... and the host's view shows the decision as it happens
    seen = await events_until(host, lambda e: e["event"] == "decision")
    assert seen["decided"] is False and seen["ballots"]["py"]["choice"] == "later"

    tie = await cli.run("vote", addr, "ship?", "--options", "yes,no", "--rule", "plurality", "--timeout", "20")
    assert tie.returncode == 1 and tie.stdout.startswith("no decision: tie between yes, no"), tie.stdout
    agreed = await cli.run("vote", addr, "ship?", "--options", "no,yes", "--timeout", "20")  # both: yes
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert agreed.stdout.splitlines()[:2] == ["decided: yes (Majority)", "tally: no 0, yes 2"], agreed.stdout


async def test_a_host_without_member_calls_refuses_polls(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    host = cli.start("host", addr, "--json", "--no-member-calls")
    await events_until(host, lambda e: e["event"] == "started")
    refused = await cli.run("poll", addr, "ready?")
    assert refused.returncode == 2
    assert refused.stderr.startswith("nngc: ") and "Traceback" not in refused.stderr


# ---------------------------------------------------------------------------- work sharing
async def test_distribute_to_command_workers(cli: Cli, short_tmp: Any) -> None:
    addr = f"ipc://{short_tmp}/work"
    tasks = "".join(json.dumps(t) + "\n" for t in [1, 2, 3, 4, 5, 6, "fail"])
    cli.start("work", addr, "--exec", PY_AGENT, "--json-io", "--name", "w-exec")
    cli.start("work", addr, "--serve", f"{PY_AGENT} --serve", "--name", "w-serve")
    done = await cli.run("distribute", addr, "--workers", "2", "--max-attempts", "1", "--no-progress",
                         input=tasks)  # fmt: skip
    assert done.returncode == 1, done.stderr  # one task failed
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    results = {o["task"]: o for o in outcomes}
    assert {t: results[t]["result"] for t in range(1, 7)} == {t: 2 * t for t in range(1, 7)}
    assert "cannot do fail" in results["fail"]["error"]
    assert {o["worker"] for o in outcomes} <= {"w-exec", "w-serve"}


async def test_distribute_text_tasks_with_a_progress_bar(cli: Cli, short_tmp: Any) -> None:
    addr = f"ipc://{short_tmp}/work"
    cli.start("work", addr, "--exec", SH_AGENT)
    done = await cli.run("distribute", addr, "--text", "--ordered", "--progress", input="a\nb\n\nc\n")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["result"] for line in done.stdout.splitlines()] == [
        "sh got a", "sh got b", "sh got c",
    ]  # fmt: skip
    assert "3task" in done.stderr.replace(" ", "")  # tqdm's count on stderr


# ---------------------------------------------------------------------------- errors
# One process per test: a Python child with its imports took 8 s at load 10 on 2 cores, so
# the seven in one test outran its 60 s deadline at load 12-20. The join timeouts are short
# (nobody listens): what each case proves is the exit code and the one-line message.
ERROR_CASES = {
    "members": ("members", "{nobody}", "--join-timeout", "0.5"),
    "bad-scheme": ("members", "bogus://x"),
    "vote": ("vote", "{nobody}", "motion", "--options", "yes", "--join-timeout", "0.5"),
    "join": ("join", "{nobody}", "--name", "x", "--join-timeout", "0.5"),
    "distribute": ("distribute", "{nobody}", "--wait", "0.5"),
    "line-ports": ("join", "tcp://127.0.0.1:7000", "--name", "x", "--exec", "true", "--line-ports", "9-3"),
    "listen": ("join", "tcp://127.0.0.1:7000", "--name", "x", "--exec", "true", "--listen", "ipc:///tmp/m"),
}


@pytest.mark.parametrize("case", ERROR_CASES)
async def test_usage_and_connection_errors_are_one_line_and_exit_2(
    cli: Cli, short_tmp: Any, case: str
) -> None:
    nobody = f"ipc://{short_tmp}/nobody"
    args = [arg.format(nobody=nobody) for arg in ERROR_CASES[case]]
    done = await cli.run(*args, input="" if args[0] == "distribute" else None)
    assert done.returncode == 2, (args, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.strip(), args
    if case == "members":
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("nngc: no answer from a room host at")


async def test_watch_prints_broadcasts_and_decisions(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    async with consensus.host(addr, heartbeat=HEARTBEAT) as room:
        cli.start("join", addr, "--name", "sh", "--exec", SH_AGENT)
        watcher = cli.start("watch", addr, "--json", "--count", "2")
        await room.wait_for_members(1)
        while not room.observers:
            await room.wait_members_changed()
        await room.wait_for_mesh()
        await room.broadcast({"note": "hello"})
        await room.vote("ship?", options=["yes", "no"], timeout=20)
        out, err = await trio.to_thread.run_sync(watcher.communicate, abandon_on_cancel=True)
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0] == {"event": "message", "from": "host", "value": {"note": "hello"}}
    assert events[1]["event"] == "decision" and events[1]["outcome"] == "yes"  # the watcher is no voter


async def test_a_room_over_tls(cli: Cli, room_address: Any, short_tmp: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(short_tmp / "s.pem")
    )
    ca.cert_pem.write_to_path(str(short_tmp / "ca.pem"))
    client = ["--tls-ca", str(short_tmp / "ca.pem"), "--tls-server-name", "localhost"]
    addr = "tls+tcp://" + room_address("tcp").partition("://")[2]
    host = cli.start("host", addr, "--json", "--tls-cert", str(short_tmp / "s.pem"))
    await events_until(host, lambda e: e["event"] == "started")
    cli.start("join", addr, "--name", "sh", "--exec", SH_AGENT, *client)
    await wait_joined(host, "sh")
    voted = await cli.run("vote", addr, "ship?", "--options", "no,yes", "--json", *client)
    assert voted.returncode == 0, voted.stderr
    assert json.loads(voted.stdout)["outcome"] == "yes"
    # NNG's TLS client verifies the server, so the view's own observer needs a CA: without
    # one the view says that it shows no decisions (and goes on showing members)
    warned = await events_until(host, lambda e: e["event"] == "warning")
    assert warned["message"].startswith("decisions are not shown: no answer from a room host")
    no_ca = await cli.run("members", addr, "--join-timeout", "1")  # plain tcp to a TLS room: no host
    assert no_ca.returncode == 2


async def test_a_room_over_tls_with_a_secret_from_a_file(cli: Cli, room_address: Any, short_tmp: Any) -> None:
    """tls+tcp and a secret together: the secret comes from a file (host, agent, vote) and a
    command without it is told, in one line, that the room needs one."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(short_tmp / "s.pem")
    )
    ca.cert_pem.write_to_path(str(short_tmp / "ca.pem"))
    (short_tmp / "secret").write_text("tls and a secret\n")
    secret = ["--secret-file", str(short_tmp / "secret")]
    client = ["--tls-ca", str(short_tmp / "ca.pem"), "--tls-server-name", "localhost", *secret]
    addr = "tls+tcp://" + room_address("tcp").partition("://")[2]
    host = cli.start("host", addr, "--json", "--tls-cert", str(short_tmp / "s.pem"), *secret)
    await events_until(host, lambda e: e["event"] == "started")
    cli.start("join", addr, "--name", "sh", "--exec", SH_AGENT, *client)
    await wait_joined(host, "sh")
    voted = await cli.run("vote", addr, "ship?", "--options", "no,yes", "--json", *client)
    assert voted.returncode == 0, voted.stderr
    assert json.loads(voted.stdout)["outcome"] == "yes"
    no_secret = await cli.run("members", addr, "--join-timeout", "5", *client[:4])
    assert no_secret.returncode == 2 and "needs a secret" in no_secret.stderr, no_secret.stderr
    assert "Traceback" not in no_secret.stderr


async def test_a_taken_name_a_dead_serve_command_and_an_unknown_member(cli: Cli, room_address: Any) -> None:
    addr = room_address("ipc")
    host = await start_host(cli, addr)
    cli.start("join", addr, "--name", "alice", "--exec", SH_AGENT)
    await wait_joined(host, "alice")
    for args, message in [
        (("join", addr, "--name", "alice", "--exec", SH_AGENT), "the name 'alice' is held by a live member"),
        (("join", addr, "--name", "carol", "--serve", "exit 5"), "the --serve command exited (status 5)"),
        (("ask", addr, "nobody", "hi", "--timeout", "5"), "no member named 'nobody' in the room"),
    ]:
        done = await cli.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr.splitlines()[-1] and "Traceback" not in done.stderr
