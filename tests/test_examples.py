"""The examples run end to end as a user would run them (each agent a separate process)."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
from types import ModuleType

import pytest
from conftest import ROOT, free_tcp_port_run

from consensus import free_ports


def run_example(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_survey_example(transport: str) -> None:
    # tcp: ports from the tests' range, not the kernel's ephemeral one, where any outgoing
    # connection of a busy run may take P+1..P+4 before the room listens (it did once).
    port = ["--port", str(free_tcp_port_run(5))] if transport == "tcp" else []
    out = run_example("examples/survey.py", "--agents", "4", "--timeout", "5", "--transport", transport, *port)
    assert "4 agents joined" in out
    assert "agent-2" in out and "error: RuntimeError: my model endpoint is down" in out
    assert "1/4 answered" in out
    if "missing: agent-3, agent-4" in out:
        # agent-3's Timeout leaves 50 ms (REPLY_MARGIN) before the deadline; on a loaded machine
        # it can land just after it and agent-3 is missing instead (as in test_rooms).
        assert "error: Timeout" not in out
        return
    assert "agent-3" in out and "error: Timeout: handler" in out
    assert "missing: agent-4" in out


def test_vote_example_is_deterministic() -> None:
    first = run_example("examples/vote.py", "--timeout", "30")
    assert "7 agents joined" in first
    assert "=> no decision  [Majority" in first and "=> adopt  [Plurality" in first
    ballots = [line for line in first.splitlines() if line.startswith("  agent-")]
    second = run_example("examples/vote.py", "--timeout", "30")
    assert ballots == [line for line in second.splitlines() if line.startswith("  agent-")]


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_pipeline_example(transport: str) -> None:
    port = ["--port", str(free_tcp_port_run(5))] if transport == "tcp" else []  # (as test_survey_example)
    out = run_example(
        "examples/pipeline.py", "--workers", "4", "--kill", "2", "--tasks", "120", "--lease", "2",
        "--transport", transport, *port,
    )  # fmt: skip

    def count(label: str) -> int:
        found = re.search(rf"^  {label} +(\d+)", out, re.MULTILINE)
        assert found is not None, out
        return int(found.group(1))

    assert "4 workers joined" in out, out
    assert out.count("SIGKILL to worker-") == 2 and "started worker-5" in out, out
    assert (count("tasks submitted"), count("ok outcomes"), count("failed outcomes")) == (120, 119, 1), out
    poison = [line for line in out.splitlines() if "failed after" in line]
    assert len(poison) == 1 and "failed after 3 attempts: ValueError: doc-" in poison[0], out
    # Each victim is killed while it holds a claimed attempt: what it held must have come back.
    assert count("redelivered") >= 1, out
    assert "every task accounted for: 120 submitted = 119 ok + 1 failed, each exactly once" in out, out


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_hotline_example(transport: str) -> None:
    port = ["--port", str(free_tcp_port_run(1))] if transport == "tcp" else []  # (as test_survey_example)
    out = run_example("examples/hotline.py", "--turns", "4", "--transport", transport, *port)
    assert "gemini dialed in" in out, out
    turns = [line for line in out.splitlines() if line.startswith("turn ")]
    assert [line.split(":")[1].split("->")[0].strip() for line in turns] == [
        "claude asks gemini", "gemini asks claude", "claude asks gemini", "gemini asks claude",
    ], out  # fmt: skip
    assert "history: gemini -> claude -> gemini -> claude" in out, out
    assert "I split every triangle into four" in out and "(28 words; first token after" in out, out
    stats = {
        name: (int(answered), int(served))
        for name, answered, served in re.findall(
            r"^  (\w+) +asks answered (\d+), served (\d+)", out, re.MULTILINE
        )
    }
    assert stats == {"claude": (4, 2), "gemini": (2, 3)}, out  # deterministic for 4 turns


def test_big_payload_example(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="shm-example-", dir="/dev/shm"))  # the example's segments
    monkeypatch.setenv("NNG_CONSENSUS_SHM_DIR", str(folder))
    try:
        out = run_example("examples/big_payload.py", "--mib", "16")
        left = sorted(p.name for p in folder.iterdir())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert left == [], f"segments left behind: {left}"
    assert "point cloud of 4,194,304 float32 values (16 MiB) over ipc" in out, out
    rows = re.findall(r"^(inline|shared memory|zero-copy producer) .* ms  (.+?) +([0-9a-f]{8}) / ([0-9a-f]{8})",
                      out, re.MULTILINE)  # fmt: skip
    assert [row[0] for row in rows] == ["inline", "shared memory", "zero-copy producer"], out
    assert [row[1] for row in rows] == ["bytes", "read-only memoryview", "read-only memoryview"], out
    assert all(sent == received for _, _, sent, received in rows), out
    assert len({sent for _, _, sent, _ in rows}) == 1, out  # the same cloud in every mode
    assert "checksums equal in all three modes: yes" in out, out
    assert out.count("speed-up over inline:") == 2, out


def test_roundtable_example_reports_agreement_mind_changes_and_early_stop() -> None:
    out = run_example("examples/roundtable.py", "--timeout", "30")
    assert "6 agents joined" in out
    assert "Answer: NATS (5 of 6 members agreed)" in out
    assert "Counterpoint: Redis: Redis is the most effective tool because it is everywhere" in out
    changed = sorted(re.findall(r"^  (.+?) \(changed mind\)", out, flags=re.MULTILINE))
    assert changed == ["Llama", "Qwen", "Sonar Pro"]
    assert "Claude persuaded Llama, Qwen and Sonar Pro to pivot" in out
    assert "Rounds: 3 (stopped by rounds)" in out
    assert re.search(r"Plurality +=> NATS", out) and re.search(r"confidence-weighted +=> no outcome", out)
    longer = run_example("examples/roundtable.py", "--timeout", "30", "--rounds", "6")
    assert "Rounds: 4 (stopped by no_change)" in longer and "converged on NATS in round 4" in longer


# ---------------------------------------------------------------- tcp without --port
def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Draws:
    """Stands for the port generator: hands out ``ports`` in turn."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)

    def randrange(self, start: int, stop: int) -> int:
        return self.ports.pop(0)


def test_a_room_address_without_a_port_takes_five_free_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--transport tcp`` and no ``--port`` (the examples, ``consensus.free_ports``): a room
    listens on P..P+4 (the help names them), so P is drawn until all five are free, not one
    free port and the next four whatever they hold."""
    port = int(free_ports.free_room_address().rpartition(":")[2])
    assert port + 4 < 32768  # below Linux's ephemeral ports, which outgoing connections take
    taken, free = free_tcp_port_run(5), free_tcp_port_run(5)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken + 3))  # P is free, P+3 is not
        holder.listen()
        monkeypatch.setattr(free_ports, "_PICK", Draws(taken, free))
        assert free_ports.free_room_address() == f"tcp://127.0.0.1:{free}"


@pytest.mark.parametrize("name", ["vote", "roundtable", "survey", "pipeline"])
def test_a_room_example_without_a_port_draws_its_address(name: str) -> None:
    assert load_example(name).free_room_address is free_ports.free_room_address


def test_the_vote_example_over_tcp_without_a_port() -> None:
    out = run_example("examples/vote.py", "--timeout", "30", "--transport", "tcp")
    assert "7 agents joined" in out and "=> adopt  [Plurality" in out, out
