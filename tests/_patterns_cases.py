"""What the pattern layer's tests over real sockets share (``tests/test_patterns_*.py``)."""

from __future__ import annotations

CROSS_PROCESS = ["ipc", "tcp"]
VALUES = [None, 0, -1, 2**70, 1.5, "héllo", b"\x00\xff" * 40, [1, [2, [3]]], {"a": {"b": [True, False]}}]
