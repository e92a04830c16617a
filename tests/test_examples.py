"""The examples run end to end as a user would run them (each agent a separate process)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


def run_example(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_survey_example(transport: str) -> None:
    out = run_example("examples/survey.py", "--agents", "4", "--timeout", "1.5", "--transport", transport)
    assert "4 agents joined" in out
    assert "agent-2" in out and "error: RuntimeError: my model endpoint is down" in out
    assert "agent-3" in out and "error: Timeout: handler" in out
    assert "1/4 answered" in out and "missing: agent-4" in out


def test_vote_example_is_deterministic() -> None:
    first = run_example("examples/vote.py")
    assert "7 agents joined" in first
    assert "=> no decision  [Majority" in first and "=> adopt  [Plurality" in first
    ballots = [line for line in first.splitlines() if line.startswith("  agent-")]
    second = run_example("examples/vote.py")
    assert ballots == [line for line in second.splitlines() if line.startswith("  agent-")]
