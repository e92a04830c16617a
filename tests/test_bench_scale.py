"""``python -m bench.scale``: a room of 8 and of 40 members (relayed past 32) in member
processes; every poll, the vote and one member's broadcast reach every member, and the
descriptor counts are there. Run as a child process, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.timeout(240)


def test_scale_reports_every_member_in_every_round(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--n", "8", "--n", "40", "--polls", "3", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["placement"] == "one host"
    rows = {row["n"]: row for row in report["rows"]}
    assert sorted(rows) == [8, 40]
    assert (rows[8]["mode"], rows[40]["mode"], rows[40]["processes"]) == ("mesh", "relay", 5)
    for n, row in rows.items():
        assert row["polls_missing"] == 0 and row["members_missing"] == 0 and row["vote_missing"] == 0, row
        assert row["broadcast_reached"] == n - 1, row
        assert 0 < row["poll_p50_ms"] <= row["poll_p99_ms"] < 5000 and row["broadcast_all_ms"] > 0, row
        assert row["host_fds"] > 0 and row["member_process_fds"] > 0, row
    assert "poll_p50_ms" in done.stdout  # the table
