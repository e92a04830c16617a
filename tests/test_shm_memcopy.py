"""Copies into a segment's mapping (``patterns.shm.memcopy``): every kind of source the
codec places arrives byte for byte, on both sides of the GIL-free threshold, and a copy
that would not fit is refused before a byte is written."""

from __future__ import annotations

import array
import mmap

import pytest

from patterns.shm import memcopy

MiB = 1024 * 1024


def sources(size: int) -> list[memoryview]:
    pattern = (bytes(range(256)) * (size // 256 + 1))[:size]
    floats = array.array("d", range(size // 8))  # (its size rounded down to 8 bytes)
    return [
        memoryview(pattern),  # read-only: its address only through the buffer protocol
        memoryview(bytearray(pattern)),
        memoryview(floats).cast("B"),
        memoryview(pattern)[256:],  # an offset into its exporter
    ]


@pytest.mark.parametrize(
    "size",
    [4096, memcopy.GIL_FREE_FROM - 256, memcopy.GIL_FREE_FROM, 3 * MiB + 4099],  # (not whole steps)
)
def test_every_source_arrives_byte_for_byte(size: int) -> None:
    with mmap.mmap(-1, 4 * MiB) as mapping:
        for source in sources(size):
            mapping[:] = b"\xff" * len(mapping)
            memcopy.copy_into(mapping, 4096, source)
            assert mapping[4096 : 4096 + source.nbytes] == source.tobytes()
            assert (
                mapping[4095:4096] == b"\xff"
                and mapping[4096 + source.nbytes : 4097 + source.nbytes] == b"\xff"
            )


def test_a_copy_that_does_not_fit_is_refused_before_a_byte_is_written() -> None:
    with mmap.mmap(-1, 2 * MiB) as mapping:
        for offset, size in ((MiB + 1, MiB), (-1, 16)):
            with pytest.raises(ValueError, match="do not fit"):
                memcopy.copy_into(mapping, offset, memoryview(b"\1" * size))
        assert mapping[:] == bytes(2 * MiB)


def test_the_mapping_cannot_be_closed_while_it_is_copied_into(monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy holds an export of the mapping: another thread's close() fails then, it
    does not unmap the mapping under the copy (tried here from within each step)."""
    seen: list[str] = []
    mapping = mmap.mmap(-1, 2 * MiB)
    real = memcopy._memmove

    def memmove(dst: int, src: int, count: int) -> int:
        try:
            mapping.close()
        except BufferError:
            seen.append("refused")
        return int(real(dst, src, count))

    monkeypatch.setattr(memcopy, "_memmove", memmove)
    memcopy.copy_into(mapping, 0, memoryview(bytearray(b"\7" * MiB)))
    assert seen == ["refused"] * (MiB // memcopy.STEP) and mapping[:MiB] == b"\7" * MiB
    mapping.close()
