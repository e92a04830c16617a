"""A segment whose reference never left its process goes when that process exits normally.

Each test runs a real child process (``subprocess``) that makes segments in the test's
own directory and exits; the parent then looks at what is left there. A segment whose
reference went out (taken with ``ref``, or sent) must stay: a receiver may still attach it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _shm import ROOT, no_leak, ref_from_hex, ref_hex, segments, shm_dir

from patterns.shm.header import DIRECTORY_ENV
from patterns.shm.segment import attach

__all__ = ["no_leak", "ref_hex", "shm_dir"]  # fixtures used by name

PRELUDE = """
import gc, sys
import cbor2
import patterns
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


def test_a_segment_whose_reference_left_outlives_its_process(shm_dir: Path) -> None:
    lines = run_child(
        shm_dir,
        """
buf = patterns.shared_buffer(16)
buf.view[:] = b"0123456789abcdef"
print(cbor2.dumps(buf.ref.to_wire()).hex())     # the reference leaves: a receiver may come
part = place(b"partial payload!", lease=30)
print(cbor2.dumps(part.ref_range(8, 8).to_wire()).hex())
unsent = patterns.shared_buffer(16)
""",
    )
    whole, part = (ref_from_hex(line) for line in lines)
    assert sorted(segments(shm_dir)) == sorted([whole.name, part.name])
    assert bytes(attach(whole, directory=shm_dir)) == b"0123456789abcdef"
    assert bytes(attach(part, directory=shm_dir)) == b"payload!"
    assert segments(shm_dir) == []


def test_segments_a_socket_sent_outlive_their_process_and_a_failed_send_leaves_none(shm_dir: Path) -> None:
    lines = run_child(
        shm_dir,
        """
from patterns.shm.codec import Placement
policy = patterns.SharedMemory(threshold=1024)
handed = patterns.shared_buffer(16)
handed.view[:] = b"handed over ...."
with Placement(policy, 1) as sent:         # the send completes: sent() hands both over
    sent.put(handed, handed.view)
    data = b"placed for a send"
    sent.put(data, memoryview(data * 100))
for ref in sent.refs:
    print(cbor2.dumps(ref).hex())
failed = Placement(policy, 1)
unlucky = patterns.shared_buffer(16)
failed.put(unlucky, unlucky.view)
failed.put(b"y", memoryview(b"y" * 4096))
failed.abort()                             # the send failed: its placed segment goes now
""",
    )
    refs = [ref_from_hex(line) for line in lines]
    assert sorted(segments(shm_dir)) == sorted(ref.name for ref in refs)
    assert bytes(attach(refs[0], directory=shm_dir)) == b"handed over ...."
    assert bytes(attach(refs[1], directory=shm_dir)) == b"placed for a send" * 100
    assert segments(shm_dir) == []


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
