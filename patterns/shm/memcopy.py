"""Copying a payload into a segment's mapping without holding the GIL.

A slice assignment (``view[a:b] = source``) is one ``memmove`` with the GIL held: ~3 ms
per 64 MiB here, during which no other thread of the process runs Python. The background
thread (``_shm_worker``) then can hardly prepare the spare segment a stream needs (its
pre-faulting needs the GIL between its ``madvise`` steps: a 64 MiB spare took 58 ms
during a stream of 64 MiB sends, 35 ms with the copies off the GIL), and a trio or
asyncio loop on another thread stalls as long. So large copies go through ``ctypes.memmove``, which releases the GIL;
the addresses come from the buffer protocol (``PyObject_GetBuffer``: a read-only
source such as ``bytes`` has no other way to its address), and the source's buffer is
held until the copy is done, as is an export of the mapping (so no other thread can
close it meanwhile).
"""

from __future__ import annotations

import ctypes
import mmap
from typing import Final

__all__ = ["GIL_FREE_FROM", "STEP", "copy_into"]

GIL_FREE_FROM: Final = 1 << 20
"""Bytes from which a copy releases the GIL; a smaller one is a slice assignment (the
buffer-protocol calls cost a few microseconds)."""

STEP: Final = 512 * 1024
"""Bytes copied per ``memmove`` call. glibc copies a block of up to
``rep_movsb_stop_threshold`` bytes with ``rep movsb`` and a larger one with a vector
loop; on AMD that threshold is the L2 size (1 MiB here, ``ld.so --list-diagnostics``)
and the loop is slower: 64 MiB in one call took 3.1-3.7 ms, in 512 KiB steps 2.6-3.0 ms
(numpy.copyto 3.2-3.6 ms; 8 copies each, in 2 runs; docs/shared-memory.md §3.4). Where ``rep movsb`` goes on up to
the non-temporal threshold (Intel), steps change nothing."""
_PYBUF_SIMPLE: Final = 0


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (part of the stable ABI since 3.11)."""

    _fields_ = (
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),  # a borrowed pointer to ctypes: PyBuffer_Release drops it
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    )


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = (ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int)
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = (ctypes.POINTER(_PyBuffer),)
_release_buffer.restype = None
_memmove = ctypes.memmove  # a foreign function: called without the GIL


def copy_into(mapping: mmap.mmap, offset: int, source: memoryview) -> None:
    """Copy the C-contiguous ``source`` into writable ``mapping`` at ``offset`` (it must
    fit); from :data:`GIL_FREE_FROM` bytes on without the GIL."""
    size = source.nbytes
    if offset < 0 or offset + size > len(mapping):
        raise ValueError(f"{size} bytes at offset {offset} do not fit a mapping of {len(mapping)} bytes")
    if size < GIL_FREE_FROM or not source.c_contiguous:
        with memoryview(mapping) as whole:
            whole[offset : offset + size] = source
        return
    buffer = _PyBuffer()
    _get_buffer(source, ctypes.byref(buffer), _PYBUF_SIMPLE)  # raises (pythonapi) if refused
    try:
        if buffer.len != size:  # (a C-contiguous buffer is its bytes, end to end)
            raise ValueError(f"source exports {buffer.len} bytes, expected {size}")
        anchor = ctypes.c_char.from_buffer(mapping)  # an export: nobody can close it meanwhile
        try:
            target, origin = ctypes.addressof(anchor) + offset, buffer.buf
            for done in range(0, size, STEP):  # (each step without the GIL)
                _memmove(target + done, origin + done, min(STEP, size - done))
        finally:
            del anchor
    finally:
        _release_buffer(ctypes.byref(buffer))
