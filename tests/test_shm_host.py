"""The same-host proof (``patterns._shm_host``): a probe segment, a nonce, a keyed answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _shm import ROOT, no_leak, segments, shm_dir

from patterns._errors import BadReference
from patterns._shm_header import FLAG_PROBE
from patterns._shm_host import NONCE_SIZE, HostIdentity, HostProbe, answer_probe, host_identity
from patterns._shm_segment import place

__all__ = ["no_leak", "shm_dir"]  # fixtures used by name


def test_a_peer_on_this_host_proves_it(shm_dir: Path) -> None:
    with HostProbe.create(directory=shm_dir) as probe:
        assert probe.name in segments(shm_dir) and len(probe.nonce) == NONCE_SIZE
        answer = answer_probe(probe.name, probe.nonce, directory=shm_dir)
        assert answer is not None and probe.verify(answer)
        assert answer_probe(probe.name, probe.nonce, directory=shm_dir) == answer  # reading consumes nothing
        assert not probe.verify(answer_probe(probe.name, bytes(NONCE_SIZE), directory=shm_dir))
        assert not probe.verify(None) and not probe.verify(bytes(32)) and not probe.verify("x")
    assert segments(shm_dir) == []
    probe.close()  # idempotent


def test_another_process_proves_it_too(shm_dir: Path) -> None:
    with HostProbe.create(directory=shm_dir) as probe:
        code = (
            "import sys; from patterns._shm_host import answer_probe;"
            "print(answer_probe(sys.argv[1], bytes.fromhex(sys.argv[2]), directory=sys.argv[3]).hex())"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, probe.name, probe.nonce.hex(), str(shm_dir)],
            check=False, capture_output=True, text=True, timeout=20, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert probe.verify(bytes.fromhex(done.stdout.strip()))


def test_what_cannot_be_read_here_gets_no_answer(shm_dir: Path, tmp_path: Path) -> None:
    with HostProbe.create(directory=shm_dir) as probe:
        assert answer_probe(probe.name, probe.nonce, directory=tmp_path) is None  # "another host"
    assert answer_probe(probe.name, probe.nonce, directory=shm_dir) is None  # closed
    data = place(bytes(32), lease=30, directory=shm_dir)  # a payload is not a probe
    assert answer_probe(data.name, probe.nonce, directory=shm_dir) is None
    data.discard()


def test_malformed_inputs_from_the_peer(shm_dir: Path) -> None:
    with HostProbe.create(directory=shm_dir) as probe:
        for name in ("../x", "/etc/passwd", 12, None):
            with pytest.raises(BadReference):
                answer_probe(name, probe.nonce, directory=shm_dir)
        for nonce in (b"short", "x" * NONCE_SIZE, bytearray(NONCE_SIZE), None):
            with pytest.raises(BadReference):
                answer_probe(probe.name, nonce, directory=shm_dir)


def test_the_probe_is_a_leased_segment_the_sweep_knows(shm_dir: Path) -> None:
    from _shm import read_header

    from patterns._shm_sweep import sweep

    probe = HostProbe.create(lease=5, directory=shm_dir)
    header = read_header(shm_dir / probe.name)
    assert header.flags & FLAG_PROBE and header.owner.pid == os.getpid()
    assert sweep(header.lease_deadline, directory=shm_dir).expired == 1
    probe.close()


def test_host_identity(shm_dir: Path) -> None:
    here = host_identity(shm_dir)
    assert isinstance(here, HostIdentity) and len(here.boot_id) == 36
    assert here == host_identity(shm_dir) and here.to_wire() == [here.boot_id, here.shm_dev, here.shm_ino]
    assert host_identity("/dev/shm").shm_dev == here.shm_dev  # the same tmpfs
    assert host_identity("/dev/shm") != here  # another directory on it
