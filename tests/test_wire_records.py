"""Small records (``patterns._records``) against hostile bytes: the general decoder's fields, or None.

The other property tests draw *values* and let cbor2 write them, so the bytes they read are
cbor2's (shortest heads, valid UTF-8, float64s of Python floats) and their comparison is
``==`` (``True == 1``, ``0.0 == -0.0``, ``1 == 1.0``). Here the bytes are drawn head by head,
as a peer may write them: heads in a longer form than needed, text that is not UTF-8
(surrogates, overlong forms, cut sequences), NaNs with payloads, half and single floats,
integers at each width's edge in both signs, strings at 23/24/255/256 bytes, keys twice or
not text, five entries, three levels, other heads (tags, simple values, indefinite lengths),
then damaged. Whatever the fast readers (:func:`read_map`, :func:`patterns._head.read`,
:meth:`Shape.read` of a line's and a room's shapes) accept must be exactly what the general
decoder reads: same types, same float bits, same key order. The writers are held to cbor2
and to the general writer's choice of what goes to shared memory, at the same edges.
"""

from __future__ import annotations

import struct
from typing import Any

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns import HOLE, MalformedMessage, decode
from patterns._cbor import decode_nested
from patterns._codec_plain import is_plain
from patterns._head import read
from patterns._records import read_map, write_map
from patterns._shape import Shape
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH, common_frame

PROPERTY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same value: same types all the way down, floats bit for bit."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# ----------------------------------------------------------------------------- bytes, head by head
_EDGES = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
_WIDTHS = [(0, 24), (1, 256), (2, 65536), (4, 2**32), (8, 2**64)]


def odd(draw: st.DrawFn) -> bool:
    """Make this part odd (one in fifteen): about half the records drawn are then read on the
    fast path, and a third of them have one thing wrong (the checks are tried one at a time)."""
    return draw(st.integers(0, 14)) == 7  # (not an end: hypothesis draws those more often)


@st.composite
def heads(draw: st.DrawFn, major: int, n: int) -> bytes:
    """The head of ``major`` with argument ``n``: shortest, or (odd, as a peer may) longer."""
    widths = [width for width, bound in _WIDTHS if n < bound]
    width = draw(st.sampled_from(widths)) if odd(draw) else widths[0]
    if width == 0:
        return bytes([major << 5 | n])
    return bytes([major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[width]]) + n.to_bytes(width, "big")


_NOT_UTF8 = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80",
             b"\xff", b"\x80", b"\xc3", b"\xf0\x9f\x98"]  # fmt: skip
_PIECES = ["", "a", "v", "é", "€", "\U0001f600", "stream", "answer", "\x00"]


@st.composite
def text_bytes(draw: st.DrawFn) -> bytes:
    """A text string: short pieces, an edge length, or (odd) bytes that are not UTF-8 among them."""
    raw = "".join(draw(st.lists(st.sampled_from(_PIECES), max_size=3))).encode()
    if odd(draw):
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(_NOT_UTF8)) + raw[at:]
    elif draw(st.integers(0, 5)) == 0:
        raw = b"x" * draw(st.sampled_from([23, 24, 255, 256, 300]))
    return draw(heads(3, len(raw))) + raw


@st.composite
def byte_bytes(draw: st.DrawFn) -> bytes:
    length = draw(st.sampled_from([0, 1, 5, 23, 24, 255, 256, 1000]))
    return draw(heads(2, length)) + draw(st.binary(min_size=length, max_size=length))


_NAN_AND_ODD = [0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF0000000000000, 0xFFF0000000000000,
                0x8000000000000000, 0x0000000000000001, 0x000FFFFFFFFFFFFF, 0x3FF0000000000000]  # fmt: skip
_OTHER = [b"\xf9\x7e\x00", b"\xf9\x3c\x00", b"\xf9\x80\x00", b"\xfa\x3f\x80\x00\x00", b"\xfa\x7f\xc0\x00\x01", b"\xf7",
          b"\xf0", b"\xf8\x20", b"\xfc", b"\xff", b"\x1c", b"\x5f\x41a\xff", b"\x7f\x61a\xff", b"\x9f\xff", b"\xbf\xff",
          b"\xc2\x41\x01", b"\xc3\x41\x01", b"\xd8\x20\x01", b"\xd9\x6e\x6e\x00", b"\x7a\x00\x00\x00\x01a",
          b"\x5a\x00\x00\x00\x01a", b"\x1c\x00", b"\x3c"]  # fmt: skip


@st.composite
def scalar_bytes(draw: st.DrawFn) -> bytes:
    if odd(draw):
        return draw(st.sampled_from(_OTHER))
    how = draw(st.integers(0, 4))
    if how <= 1:
        return draw(heads(how, draw(st.sampled_from(_EDGES) | st.integers(0, 2**64 - 1))))
    if how == 2:
        bits = draw(st.sampled_from(_NAN_AND_ODD) | st.integers(0, 2**64 - 1))
        return b"\xfb" + bits.to_bytes(8, "big")
    if how == 3:
        return draw(st.sampled_from([b"\xf4", b"\xf5", b"\xf6"]))
    return draw(text_bytes() | byte_bytes())


@st.composite
def key_bytes(draw: st.DrawFn, keys: list[bytes]) -> bytes:
    if odd(draw):
        if keys and draw(st.integers(0, 1)):
            return draw(st.sampled_from(keys))  # a key twice
        return draw(scalar_bytes() | st.just(b"\x78\x18" + b"k" * 24))  # a number, bytes... a long key
    pieces = draw(st.lists(st.sampled_from(_PIECES), max_size=2))
    raw = "".join(pieces).encode() + b"%d" % len(keys)  # (each key once)
    return draw(heads(3, len(raw))) + raw


def item_bytes(depth: int) -> st.SearchStrategy[bytes]:
    if depth == 0:
        return scalar_bytes()
    scalar = scalar_bytes()
    return st.one_of(scalar, scalar, scalar, map_bytes(depth - 1), array_bytes(depth - 1))


def count(draw: st.DrawFn) -> int:
    return 5 if odd(draw) else draw(st.integers(0, 4))


@st.composite
def array_bytes(draw: st.DrawFn, depth: int) -> bytes:
    items = count(draw)
    return draw(heads(4, items)) + b"".join(draw(item_bytes(depth)) for _ in range(items))


@st.composite
def map_bytes(draw: st.DrawFn, depth: int = 2) -> bytes:
    """A map of 0 to 4 entries (odd: 5), ``depth`` levels of maps and arrays below it at most
    (odd: one more)."""
    entries = count(draw)
    data = draw(heads(5, entries))
    keys: list[bytes] = []
    for _ in range(entries):
        key = draw(key_bytes(keys))
        keys.append(key)
        data += key + draw(item_bytes(depth + 1 if odd(draw) else depth))
    return data


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` (most often) whole, or a byte changed (anywhere, or in its last 12), cut, inserted."""
    how = draw(st.sampled_from(["whole", "whole", "whole", "whole", "flip", "last", "cut", "insert"]))
    if how == "whole":
        return data
    at = draw(st.integers(max(0, len(data) - 12) if how == "last" else 0, len(data) - 1))
    changed = bytearray(data)
    if how in ("flip", "last"):
        changed[at] ^= draw(st.integers(1, 255))
    elif how == "cut":
        del changed[at:]
    else:
        changed[at:at] = draw(st.binary(min_size=1, max_size=3))
    return bytes(changed)


_MARK = "\x00body\x00"


def frame(kind: str, sender: str, ident: int, re: int | None, deadline: float | None, body: bytes) -> bytes:
    """The common frame of these fields, ``body`` its body's bytes as they are."""
    fields: dict[str, Any] = {"v": 1, "k": kind, "s": sender, "id": ident}
    if re is not None:
        fields["re"] = re
    if deadline is not None:
        fields["dl"] = deadline
    fields["b"] = _MARK
    return cbor2.dumps(fields).replace(cbor2.dumps(_MARK), body)


def around(template: Any, value: bytes) -> bytes:
    """The bytes of ``template`` (a shape's body) with ``value``'s bytes in its hole."""
    return cbor2.dumps(_MARK if template is HOLE else {k: _MARK if v is HOLE else v for k, v in template.items()}
                       ).replace(cbor2.dumps(_MARK), value)  # fmt: skip


def general(data: bytes) -> tuple[Any, ...] | None:
    """The fields the general decoder reads from ``data`` (None: it refuses the frame)."""
    try:
        envelope = decode(bytearray(data), measure=False)
    except MalformedMessage:
        return None
    return envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline


def _no_cbor2(view: memoryview, size: int) -> Any:
    raise LookupError("left to cbor2")  # (the head reader then returns None: only its own reads count)


_SHAPES = [  # a line's ask and reply (scalars), a room's answer (strings and maps only)
    Shape("ask", "asker", re=False, deadline=True, body={"v": HOLE, "stream": False}, max_kind=MAX_KIND_LENGTH,
          max_sender=MAX_SENDER_LENGTH, scalars=True),
    Shape("reply", "asker", re=True, deadline=False, max_kind=MAX_KIND_LENGTH, max_sender=MAX_SENDER_LENGTH,
          scalars=True),
    Shape("answer", "m1", re=True, deadline=False, body={"answer": HOLE}, max_kind=MAX_KIND_LENGTH,
          max_sender=MAX_SENDER_LENGTH),
]  # fmt: skip
_TEMPLATES = [{"v": HOLE, "stream": False}, HOLE, {"answer": HOLE}]


@PROPERTY
@given(st.data())
def test_a_record_read_here_is_the_general_decoders(data: st.DataObject) -> None:
    body = data.draw(damaged(data.draw(map_bytes())))
    try:
        fast = read_map(body, 0, len(body)) if body and 0xA0 <= body[0] <= 0xA4 else None
    except Exception:  # noqa: BLE001 - documented: bytes that are not CBOR may raise (callers: None)
        fast = None
    if fast is not None:
        assert same(fast, decode_nested(body, len(body)))


@PROPERTY
@given(st.data())
def test_a_body_the_head_reads_is_the_general_decoders(data: st.DataObject) -> None:
    body = data.draw(map_bytes() | item_bytes(3))
    ident = data.draw(st.sampled_from([7, 2**62 + 7]))
    whole = data.draw(damaged(frame("answer", "m1", ident, 5, None, body)))
    fast = read(whole, _no_cbor2, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)  # (never raises: None)
    if fast is not None:
        assert same(fast, general(whole))


@PROPERTY
@given(st.data())
def test_a_frame_a_shape_reads_is_the_general_decoders(data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(_SHAPES) - 1))
    shape, template = _SHAPES[at], _TEMPLATES[at]
    value = data.draw(map_bytes(2) | item_bytes(2))
    re, deadline = (2**62 + 3 if shape.re else None), (1.5e9 if shape.deadline else None)
    whole = frame(shape.kind, shape.sender, 2**62 + 9, re, deadline, around(template, value))
    whole = data.draw(damaged(whole))
    got = shape.read(whole)  # (never raises: None)
    if got is not None:
        assert same((shape.kind, shape.sender, got[0], got[3], got[1], got[2]), general(whole))


_READ = [  # (body, read here): each a check of read_map's, or a form it must take
    (b"\xa1\x61a\xfb\x7f\xf8" + bytes(5) + b"\x01", True),  # a NaN with a payload: its bits kept
    (b"\xa1\x61a\xfb\x80" + bytes(7), True),  # -0.0
    (b"\xa1\x61a\x3b" + b"\xff" * 8, True),  # -2**64
    (b"\xa1\x61a\x1b" + b"\xff" * 8, True),  # 2**64 - 1
    (b"\xa1\x61a\x1b" + bytes(7) + b"\x05", True),  # 5, in 8 bytes (cbor2 reads it so)
    (b"\xa1\x61a\x79\x00\x01b", True),  # a text of 1 byte with a 2-byte length
    (b"\xa1\x61a\x78\x01b", True),
    (b"\xa1\x61a\x59\x00\x00", True),
    (b"\xa1\x61a\x81\xa1\x61b\xf6", True),  # two levels below the top
    (b"\xa0", True),
    (b"\xa1\x61a\xfa\x3f\x80\x00\x00" + bytes(4), False),  # a float32 (and 4 bytes cbor2 finds left over)
    (b"\xa1\x61a\xf9\x3c\x00" + bytes(6), False),  # a float16 (and 6 more)
    (b"\xa1\x61a\x7a\x00\x00\x00\x01b", False),  # a 4-byte length
    (b"\xa2\x61a\x01\x61a\x02", False),  # a key twice
    (b"\xa1\x01\x02", False),  # a key that is not text
    (b"\xa1\x41a\x02", False),
    (b"\xa1\x78\x01a\x02", False),  # a key's head longer than needed
    (b"\xa1\x61a\x81\xa1\x61b\x80", True),  # three levels
    (b"\xa1\x61a" + b"\x81" * 5 + b"\x80", True),  # six levels below the top
    (b"\xa1\x61a" + b"\x81" * 6 + b"\x80", False),  # seven
    (b"\xb7" + b"".join(b"\x62k" + bytes([0x41 + i]) + b"\x01" for i in range(23)), True),  # 23 entries
    (b"\xb7" + b"".join(b"\x62k" + bytes([0x41 + i]) + b"\x01" for i in range(23))[:-1] + b"\x80", True),
    (b"\xb8\x18" + b"".join(b"\x62k" + bytes([0x41 + i]) + b"\x01" for i in range(24)), False),  # 24
    (b"\xa1\x61a\x97" + b"\x01" * 23, True),  # an array of 23
    (b"\xa3" + b"".join(b"\x61" + bytes([0x61 + i]) + b"\x94" + b"\x01" * 20 for i in range(3)), True),  # 63 items
    (b"\xa3" + b"".join(b"\x61" + bytes([0x61 + i]) + b"\x95" + b"\x01" * 21 for i in range(3)), False),  # 66
    (b"\xa4" + b"".join(b"\x61" + bytes([0x61 + i]) + b"\x95" + b"\x01" * 21 for i in range(4)), False),  # 88
    (b"\xb8\x01\x61a\x01", False),  # a map's head longer than needed
    (b"\xa1\x61a\x63\xed\xa0\x80", False),  # a surrogate
    (b"\xa1\x61a\x78\x03\xed\xbf\xbf", False),
    (b"\xa1\x61a\x79\x00\x03\xed\xa0\x80", False),
    (b"\xa1\x61a\x62\xc0\xaf", False),  # an overlong form
    (b"\xa1\x61a\x62\xc3", False),  # cut short
    (b"\xa1\x61a\x63\x61\x62", False),
    (b"\xa1\x61a\x1b\x00", False),
    (b"\xa1\x61a\xfb\x00", False),
    (b"\xa1\x61a\x81", False),
    (b"\xa1\x61a\xc2\x41\x01", False),  # a tag
    (b"\xa1\x61a\xf7", False),  # undefined
]  # fmt: skip


def test_the_edges_are_read_or_left_as_they_should_be() -> None:
    # The property tests above compare only what the fast readers accept; these pin down
    # what they must accept, and what they must leave to the general decoder (some of which
    # it accepts: it says so then).
    for body, here in _READ:
        try:
            fast = read_map(body, 0, len(body))
        except Exception:  # noqa: BLE001 - documented (not CBOR at all): callers read None
            fast = None
        assert (fast is not None) is here, body.hex()
        if here:
            assert same(fast, decode_nested(body, len(body))), body.hex()
        whole = frame("answer", "m1", 7, 5, None, body)
        fast_fields = read(whole, _no_cbor2, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)
        assert (fast_fields is not None) is here, body.hex()
        for shape, template in zip(_SHAPES, _TEMPLATES, strict=True):
            re, deadline = (2**62 + 3 if shape.re else None), (1.5e9 if shape.deadline else None)
            whole = frame(shape.kind, shape.sender, 2**62 + 9, re, deadline, around(template, body))
            got = shape.read(whole)
            assert (got is not None) is here, (shape.kind, body.hex())
            if got is not None:
                assert same((shape.kind, shape.sender, got[0], got[3], got[1], got[2]), general(whole))


def test_every_byte_of_a_shaped_frame_changed_gets_the_general_verdict() -> None:
    # Each byte of a frame of each shape, with a record, a scalar or a text in its hole,
    # changed in turn (the tail's too: a frame that ends in "stream": true is not the ask
    # shape's): the shape reads the general decoder's fields, or leaves the frame to it.
    for shape, template in zip(_SHAPES, _TEMPLATES, strict=True):
        re, deadline = (2**62 + 3 if shape.re else None), (1.5e9 if shape.deadline else None)
        for value in (b"\xa2\x61a\x81\x20\x61b\xa1\x61c\xfb\x3f\xe0" + bytes(6), b"\x39\x01\x00", b"\x63abc"):
            whole = frame(shape.kind, shape.sender, 2**62 + 9, re, deadline, around(template, value))
            assert shape.read(whole) is not None or not shape.scalars
            for at in range(len(whole)):
                for change in (0x01, 0x02, 0x20, 0x80, 0xFF):
                    changed = bytearray(whole)
                    changed[at] ^= change
                    got = shape.read(bytes(changed))
                    if got is not None:
                        fields = (shape.kind, shape.sender, got[0], got[3], got[1], got[2])
                        assert same(fields, general(bytes(changed))), (shape.kind, at, change)


# ----------------------------------------------------------------------------- values written
class _Str(str):
    pass


class _Int(int):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


_GOOD = [None, True, False, 0, 1, -1, 23, 24, -24, -25, 255, 256, -256, -257, 65535, 65536, 2**32 - 1, 2**32, -(2**32),
         -(2**32) - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, -(2**64), 0.0, -0.0, 5e-324, 2.2250738585072014e-308,
         1.5, -2.0, 1e308, "", "é", "x" * 23, "x" * 24, "x" * 255, "x" * 256, "é" * 128, "x" * 65535, "é" * 32767,
         b"", b"x" * 23, b"x" * 24, b"x" * 255, b"x" * 256, b"x" * 4095, b"x" * 4096, b"x" * 65535]  # fmt: skip
_ODD = [2**64, -(2**64) - 1, float("nan"), float("inf"), float("-inf"), "x" * 65536, "é" * 32768, "\ud800", "a\udfff",
        b"x" * 65536, bytearray(b"ab"), _Str("s"), _Int(3), 1j]  # fmt: skip
_LIMITS = st.sampled_from([1, 24, 256, 4096, 65535, 65536, 2**20])


@st.composite
def _scalars(draw: st.DrawFn) -> Any:
    return draw(st.sampled_from(_ODD if odd(draw) else _GOOD))


@st.composite
def _keys(draw: st.DrawFn) -> Any:
    if odd(draw):
        return draw(st.sampled_from(["x" * 24, "\ud800", _Str("k"), b"k", 1, True, None, 1.5]))
    return draw(st.sampled_from(["a", "b", "é", "", "x" * 23, "stream", "v"]))


@st.composite
def _records(draw: st.DrawFn, depth: int = 2) -> Any:
    """A map of 0 to 4 entries (odd: 5), ``depth`` levels of lists and maps below it (odd: a
    level more, a tuple, a dict subclass), its leaves scalars of the edges (odd: one unwritable)."""
    body = draw(st.dictionaries(_keys(), _values(depth), min_size=count(draw), max_size=5))
    return _Dict(body) if odd(draw) else body


@st.composite
def _values(draw: st.DrawFn, depth: int) -> Any:
    if odd(draw):
        depth += 1
    if depth == 0 or draw(st.integers(0, 2)):
        return draw(_scalars())
    if draw(st.booleans()):
        return draw(_records(depth - 1))
    items = [draw(_values(depth - 1)) for _ in range(count(draw))]
    return tuple(items) if odd(draw) else items


@PROPERTY
@given(_records(), _LIMITS)
def test_a_record_written_here_is_cbor2s_and_keeps_shared_memory_s(body: dict[str, Any], limit: int) -> None:
    # (write_map's callers see to it that the top is a dict, not a subclass)
    written = write_map(body, limit) if type(body) is dict else None
    if written is not None:  # (the general writer places byte strings of ``limit`` bytes or more)
        assert is_plain(body, limit=limit)
        assert written == cbor2.dumps(body)
        assert same(decode_nested(written, len(written)), body)  # (no tuple, subclass or NaN in it)


@PROPERTY
@given(st.sampled_from(range(len(_SHAPES))), _values(2) | _records(), _LIMITS)
def test_a_frame_a_shape_writes_is_the_general_writers(at: int, value: Any, limit: int) -> None:
    shape = _SHAPES[at]
    re, deadline = (2**62 + 3 if shape.re else None), (1.5e9 if shape.deadline else None)
    written = shape.write(2**62 + 9, re, deadline, value, limit)
    if written is not None:
        body = shape.fill(value)
        assert is_plain(body, limit=limit)
        assert written == common_frame(shape.kind, shape.sender, 2**62 + 9, body, re, deadline, limit=limit)
        fields: dict[str, Any] = {"v": 1, "k": shape.kind, "s": shape.sender, "id": 2**62 + 9}
        fields |= {"re": re} if re is not None else {"dl": deadline}
        assert written == cbor2.dumps(fields | {"b": body})
        assert same(shape.read(written), (2**62 + 9, re, deadline, body))  # and read back the same


def test_the_edges_are_written_or_left_as_they_should_be() -> None:
    # What the property tests draw one at a time, at each level of a record: what must be
    # written here (cbor2's bytes), and what must go to the general writer (a byte string of
    # ``limit`` bytes is shared memory's; a tuple reads back as a list; NaN is written shorter).
    ask = _SHAPES[0]
    for wrap in (lambda v: {"a": v}, lambda v: {"a": [v]}, lambda v: {"a": {"b": [1, v]}}):
        for value in (-(2**64), 2**64 - 1, -(2**63), -0.0, 5e-324, True, None, "x" * 65535, b"x" * 4095):
            body = wrap(value)
            assert write_map(body, 4096) == cbor2.dumps(body), repr(body)[:80]
            assert ask.write(2**62, None, 1.5e9, body, 4096) == common_frame("ask", "asker", 2**62, ask.fill(body),
                                                                             None, 1.5e9, limit=4096)  # fmt: skip
        for odd_value in (-(2**64) - 1, 2**64, float("nan"), float("inf"), "x" * 65536, "\ud800", b"x" * 4096, (1,),
                      bytearray(b"x"), _Str("s"), _Int(1), _Dict(), [[[[[[[1]]]]]]]):  # fmt: skip
            body = wrap(odd_value)
            assert write_map(body, 4096) is None, repr(body)[:80]
            assert ask.write(2**62, None, 1.5e9, body, 4096) is None, repr(body)[:80]
    assert write_map({"a": [[1]], "b": {"c": {}}}, 4096) == cbor2.dumps({"a": [[1]], "b": {"c": {}}})
