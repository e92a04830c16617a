"""``python -m bench --hosts``: every scenario and peer row across the hosts of a namespace bed,
and nothing left behind (namespaces, processes, shared memory).

The whole mode runs once, in its quickest form (``--quick``), as a child process of the
test; its environment carries a tag that every process it starts inherits, so a process
left alive anywhere (on a host, a server, a keeper) is found afterwards by that tag.
Without root or ``ip netns`` the run is skipped with the reason in one line.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

import bench.__main__ as bench_main
from bench import _hosts_suite, hosts
from bench._schema import TOOLKIT

REASON = hosts.unavailable()
RUN_TIMEOUT_S = 300.0  # about 35 s on a loaded 2-core machine; the rest is slack for a stalled step
TAG_ENV = "NNGC_TEST_BENCH_HOSTS_TAG"

# (scenario, system, variant prefix): each must be a metric, or for a peer a skip with its reason
ROWS = [
    ("poll", TOOLKIT, "room.poll"), ("poll", "pynng", "Surveyor0 trio floor"),
    ("poll", "pyzmq", "ROUTER scatter-gather"), ("poll", "nats", "scatter-gather"),
    ("work", TOOLKIT, "Dispatcher, 2 Workers, acked"), ("work", "nats", "JetStream work queue"),
    ("work", "redis", "Streams XREADGROUP"),
    *[("large", system, variant) for system, variant in _hosts_suite.LARGE_VARIANTS.values()],
]  # fmt: skip
PEERS = {"pyzmq", "nats", "redis"}
SANE = {"gather_median_ms": (0.0, 5000.0), "gather_p99_ms": (0.0, 5000.0), "tasks_per_s": (10.0, 1e7),
        "rtt_median_ms": (0.0, 60_000.0)}  # fmt: skip


def tagged_processes(tag: str) -> list[str]:
    """Live processes whose environment carries ``tag`` (the run's, inherited by all it started)."""
    needle = f"{TAG_ENV}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:100]
                found.append(f"{entry.name} {cmdline!r}")
        except OSError:
            continue
    return found


def test_without_namespaces_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(_hosts_suite, "unavailable", lambda: "network namespaces need root")
    assert bench_main.main(["--hosts", "--quick"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["bench --hosts: cannot run here: network namespaces need root"]


def test_a_missing_peer_is_a_skip_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """What host A's process returns when nats-server or redis-server is not installed (nothing starts)."""
    from bench.peers import nats_jetstream, nats_reqrep, redis_streams

    for module, name in ((nats_reqrep, "nats_missing"), (nats_jetstream, "nats_missing"),
                         (redis_streams, "redis_missing")):  # fmt: skip
        monkeypatch.setattr(module, name, lambda: "server not found: install it")
    records = [_hosts_suite._record(r.to_json()) for r in _hosts_suite._nats(True) + _hosts_suite._redis(True)]
    assert [(r.scenario, r.system, getattr(r, "reason", None), r.placement) for r in records] == [
        ("poll", "nats", "server not found: install it", _hosts_suite.SERVER_CLIENTS),
        ("work", "nats", "server not found: install it", _hosts_suite.SERVER_CLIENTS),
        ("work", "redis", "server not found: install it", _hosts_suite.SERVER_CLIENTS),
    ]


@pytest.mark.skipif(REASON is not None, reason=f"bench --hosts needs network namespaces: {REASON}")
def test_hosts_mode_reports_every_row_and_leaves_nothing(tmp_path: Path) -> None:
    tag = secrets.token_hex(8)
    env = {**os.environ, TAG_ENV: tag, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "bench", "--hosts", "--quick", "--out", str(tmp_path)],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        out, _ = run.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, out
    report: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())
    assert report["suite"] == "python -m bench --hosts", out

    bed = report["hosts"]["bed"]
    assert bed.startswith(f"{hosts.PREFIX}-{run.pid}-")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert [line for line in listed.splitlines() if line.startswith(f"{hosts.PREFIX}-{run.pid}-")] == []
    assert tagged_processes(tag) == []
    assert report["cleanup"] == {**report["cleanup"], "processes_left": [], "shm_files_left": [],
                                 "namespaces_left": []}  # fmt: skip

    metrics, skips = report["metrics"], report["skips"]
    for scenario, system, variant in ROWS:
        mine = [m for m in metrics if (m["scenario"], m["system"]) == (scenario, system)
                and m["variant"].startswith(variant)]  # fmt: skip
        skipped = [s for s in skips if (s["scenario"], s["system"]) == (scenario, system)]
        if system in PEERS and not mine:  # a peer not installed: skipped, saying why
            assert skipped and all(s["reason"].strip() for s in skipped), (scenario, system, out)
            continue
        assert mine, f"no {scenario} row for {system} {variant!r}: skips {skipped}\n{out}"
        for m in mine:
            assert m["placement"] == _hosts_suite.PLACEMENTS[scenario]
            low, high = SANE[m["name"]]
            assert low < m["value"] < high, m
            assert m["transport"] == "tcp"
    assert {m["n"] for m in metrics if m["scenario"] == "poll"} == set(_hosts_suite.POLL_NS[True])
    assert {m["payload"] for m in metrics if m["scenario"] == "large"} == {
        mib << 20 for mib in _hosts_suite.LARGE_MIB[True]
    }
    assert not [s for s in skips if s["system"] not in PEERS], skips  # the toolkit's rows never skip
