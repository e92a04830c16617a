"""Logging: rate-limited warnings for hostile input, and NNGC_LOG."""

from __future__ import annotations

import logging

import pytest

from consensus.runtime import logs


def test_one_line_per_kind_per_interval_with_the_count_since(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = logs.RateLimited(logging.getLogger("consensus.room"), interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="consensus.room"):
        assert limited.warning("frame", "bad frame from %r", "evil")
        assert not any(limited.warning("frame", "bad frame from %r", "evil") for _ in range(5))
        assert limited.warning("survey", "bad survey")  # another kind has its own budget
        now[0] += 10.0
        assert limited.warning("frame", "bad frame from %r", "evil")
    assert [r.getMessage() for r in caplog.records] == [
        "bad frame from 'evil'",
        "bad survey",
        "bad frame from 'evil' (and 5 more like it in the last 10 s)",
    ]
    assert all(r.name == "consensus.room" for r in caplog.records)


def test_nngc_log_sets_the_level_of_our_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("consensus", "patterns"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    assert logs.configure_from_env({"NNGC_LOG": "DEBUG"}) == logging.DEBUG
    assert logging.getLogger("consensus.room").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("patterns").level == logging.DEBUG
    assert logs.configure_from_env({}) is None and logs.configure_from_env({"NNGC_LOG": "loud"}) is None
