"""What a process's segments become when it exits.

Each test runs a real child process (``subprocess``) that makes segments in the test's
own directory and exits; the parent then looks at what is left there. A segment whose
reference never left goes at a normal exit. One whose reference went out (taken with
``ref``, or sent) is held for its receivers: its payload is a memfd of the sender's, so
the exit waits a little for them (``inflight.EXIT_PATIENCE``), then the names go too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _shm import ROOT, no_leak, ref_from_hex, ref_hex, segments, shm_dir

from patterns.errors import SegmentGone
from patterns.shm.header import DIRECTORY_ENV
from patterns.shm.segment import attach
from patterns.shm.sweep import sweep

__all__ = ["no_leak", "ref_hex", "shm_dir"]  # fixtures used by name

PRELUDE = """
import gc, sys
import cbor2
import patterns
import patterns.shm.inflight
from patterns.shm.segment import SharedBuffer, place
"""


def run_child(folder: Path, script: str) -> list[str]:
    """Run ``script`` in a child whose segment directory is ``folder``; its stdout lines."""
    env = {**os.environ, DIRECTORY_ENV: str(folder), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_an_unsent_shared_buffer_is_removed_at_exit(shm_dir: Path) -> None:
    lines = run_child(
        shm_dir,
        """
buf = patterns.shared_buffer(1 << 20)
buf.view[:4] = b"lost"
print(buf.name)
""",
    )
    assert lines and lines[0].startswith("nngc.")
    assert segments(shm_dir) == []


def test_unsent_buffers_closed_collected_or_placed_are_removed_at_exit(shm_dir: Path) -> None:
    lines = run_child(
        shm_dir,
        """
kept = [patterns.shared_buffer(4096) for _ in range(3)]
kept[0].close()                       # closed, never sent
del kept[1]; gc.collect()             # collected, never sent
placed = place(b"x" * 5000, lease=30)  # placed, its reference never taken
print(len(__import__("os").listdir(patterns.shm.header.segment_directory(None))))
""",
    )
    assert lines == ["4"]  # they existed while the child ran
    assert segments(shm_dir) == []


def start_child(folder: Path, script: str) -> subprocess.Popen[str]:
    """Start ``script`` in a child whose segment directory is ``folder`` (stdout piped)."""
    env = {**os.environ, DIRECTORY_ENV: str(folder), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + script], env=env, stdout=subprocess.PIPE, text=True
    )


def test_an_exiting_sender_waits_for_the_receivers_of_what_left(shm_dir: Path) -> None:
    """The payload is a memfd the sender holds: at a normal exit it waits (here up to 60 s
    instead of 1) until the receivers of what it sent attached, then exits at once."""
    child = start_child(
        shm_dir,
        """
patterns.shm.inflight.EXIT_PATIENCE = 60.0
buf = patterns.shared_buffer(16)
buf.view[:] = b"0123456789abcdef"
print(cbor2.dumps(buf.ref.to_wire()).hex())     # the reference leaves: a receiver may come
part = place(b"partial payload!", lease=30)
print(cbor2.dumps(part.ref_range(8, 8).to_wire()).hex(), flush=True)
unsent = patterns.shared_buffer(16)
""",
    )
    try:
        assert child.stdout is not None
        whole, part = (ref_from_hex(child.stdout.readline()) for _ in range(2))
        assert bytes(attach(whole, directory=shm_dir)) == b"0123456789abcdef"
        assert bytes(attach(part, directory=shm_dir)) == b"payload!"
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
    assert segments(shm_dir) == []


def test_segments_a_socket_sent_go_with_their_sender_and_a_failed_send_leaves_none(shm_dir: Path) -> None:
    """No receiver came within the exit's patience: the names go with the sender, and an
    attach that comes later finds nothing (``missing``): no memory is left behind."""
    lines = run_child(
        shm_dir,
        """
from patterns.shm.codec import Placement
patterns.shm.inflight.EXIT_PATIENCE = 0.1
policy = patterns.SharedMemory(threshold=1024)
handed = patterns.shared_buffer(16)
handed.view[:] = b"handed over ...."
with Placement(policy, 1) as sent:         # the send completes: sent() hands both over
    sent.put(handed, handed.view)
    data = b"placed for a send"
    sent.put(data, memoryview(data * 100))
for ref in sent.refs:
    print(cbor2.dumps(ref).hex())
print(len(__import__("os").listdir(patterns.shm.header.segment_directory(None))))
failed = Placement(policy, 1)
unlucky = patterns.shared_buffer(16)
failed.put(unlucky, unlucky.view)
failed.put(b"y", memoryview(b"y" * 4096))
failed.abort()                             # the send failed: its placed segment goes now
""",
    )
    refs = [ref_from_hex(line) for line in lines[:2]]
    assert lines[2] == "2" and segments(shm_dir) == []
    for ref in refs:
        with pytest.raises(SegmentGone) as caught:
            attach(ref, directory=shm_dir)
        assert caught.value.reason == "missing"


def test_a_killed_sender_leaves_a_name_whose_payload_is_gone(shm_dir: Path) -> None:
    """SIGKILL runs no exit hook: the name stays (the sweep removes it: owner dead), but the
    payload went with the process: an attach says so (``sender-gone``), it does not hang."""
    child = start_child(
        shm_dir,
        """
import time
first = place(b"delivered", lease=30)
buf = place(b"never delivered", lease=30)
print(cbor2.dumps(first.ref.to_wire()).hex())
print(cbor2.dumps(buf.ref.to_wire()).hex(), flush=True)
time.sleep(60)
""",
    )
    try:
        assert child.stdout is not None
        first, ref = (ref_from_hex(child.stdout.readline()) for _ in range(2))
        assert bytes(attach(first, directory=shm_dir)) == b"delivered"  # (its /proc entry is known now)
    finally:
        child.kill()
        child.wait()
    assert segments(shm_dir) == [ref.name]
    with pytest.raises(SegmentGone) as caught:
        attach(ref, directory=shm_dir)
    assert caught.value.reason == "sender-gone" and "exited" in str(caught.value)
    assert sweep(directory=shm_dir).owner_dead == 1 and segments(shm_dir) == []


def test_a_discarded_buffer_is_not_removed_twice(shm_dir: Path) -> None:
    """Discard forgets the name: a later segment of the same name (none here) is not touched,
    and exit raises nothing."""
    run_child(
        shm_dir,
        """
buf = patterns.shared_buffer(4096)
buf.discard()
""",
    )
    assert segments(shm_dir) == []
