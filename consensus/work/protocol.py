"""The work-sharing protocol: message kinds and strict checks of what workers and dispatchers send.

Two one-way channels, both NNG pipeline (push/pull):

- **tasks** (dispatcher push -> worker pull): ``tasks`` batches;
- **results** (worker push -> dispatcher pull): ``hello``, ``claim``, ``release``, ``done``,
  ``beat``, ``bye``.

Bodies (CBOR maps; ``st`` is the dispatcher's stream id, one per distribution)::

    tasks  {"st": int, "lease": float, "t": [[task_id, attempt, task], ...]}
    hello  {"cap": int, "tp": [str, ...], "hb": float}
                                             tasks the worker will hold at once, the local
                                             addresses of its task connections, and how
                                             often it beats (no "hb": it never does)
    claim  {"st": int, "c": [[task_id, attempt], ...]}   on receipt, then every lease/3
    release {"st": int, "c": [[task_id, attempt], ...]}  handed back unstarted: no room
    done   {"st": int, "r": [[task_id, attempt, ok, value], ...]}
                                             ok: true -> value is the result;
                                             false -> value is {"type", "message"}
    beat   {}                                every ``hb`` s when nothing else went out:
                                             the worker is alive (docs/work.md, liveness)
    bye    {}                                the worker leaves; take back what it holds

Flat lists: a worker whose hello says ``"fl": true`` reads a batch whose items lie end to
end in one list, ``"tf": [task_id, attempt, task, task_id, attempt, task, ...]`` in place
of ``"t"``; a dispatcher sends those only while every worker said so, and only without a
secret. A worker answers a flat batch in kind: ``"cf"`` for ``"c"`` (two entries an item)
and ``"rf"`` for ``"r"`` (four); a dispatcher takes either form from anyone. cbor2 writes
a list inside a list at about 0.3 µs (an ``isinstance`` check against an abstract class
per list), six times the cost of its two integers: a list per task, three times over,
was a fifth of both sides' CPU per task.

With a secret (``docs/work.md``, :mod:`consensus.trust.work`) a ``tasks`` batch also
carries ``"kx"`` (the dispatcher's X25519 key) and ``"tk"`` (one ticket per task, in
order); a ``hello`` carries ``"kx"`` (the worker's), and its ``"tp"`` then also vouches for
its task connections; a ``beat`` goes under the worker's session like a claim; a claim or release on receipt carries the tickets of its items
(``"tk"``, in order; renewals carry none).

Every body is built in :mod:`consensus.work.frames` (the ``*_frame`` functions, named
here too) and everything from a peer goes through a ``parse_*`` function here first. A wrong shape
raises :class:`MalformedMessage` (``reason="body"``); one bad item in a list is
reported by :func:`items` without hiding the good items around it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from consensus.failure import Failure
from consensus.work.frames import (
    BEAT,
    BYE,
    CLAIM,
    DONE,
    FLAT_KEY,
    HELLO,
    MAX_BATCH,
    NESTED_KEY,
    RELEASE,
    STRIDE,
    TASKS,
    Frame,
    beat_frame,
    bye_frame,
    claim_frame,
    done_frame,
    flat_done_frame,
    frame_items,
    hello_frame,
    per_stream,
    release_frame,
    send_halving,
    tasks_frame,
)
from consensus.work.records import Unmendable
from patterns import Envelope, MalformedMessage

__all__ = [
    "BEAT",
    "BYE",
    "CLAIM",
    "DONE",
    "HELLO",
    "MAX_ATTEMPT",
    "MAX_BATCH",
    "MAX_CAPACITY",
    "RELEASE",
    "STRIDE",
    "TASKS",
    "Batch",
    "Frame",
    "bad",
    "beat_frame",
    "bye_frame",
    "claim_frame",
    "claims",
    "done_frame",
    "flat_done_frame",
    "frame_items",
    "hello_frame",
    "nested",
    "parse_batch",
    "parse_capacity",
    "parse_heartbeat",
    "parse_items",
    "parse_stream",
    "parse_tickets",
    "per_stream",
    "release_frame",
    "replies",
    "send_halving",
    "tasks_frame",
]


MAX_CAPACITY: Final = 1_000_000  # tasks one worker may ask to hold
MAX_ATTEMPT: Final = 1000
MAX_ID: Final = 2**63
MAX_ERROR_TEXT: Final = 2000
MIN_HEARTBEAT: Final = 0.01  # seconds: a hello's "hb" is a period in [MIN_HEARTBEAT, MAX_HEARTBEAT]
MAX_HEARTBEAT: Final = 3600.0


def bad(envelope: Envelope, detail: str) -> MalformedMessage:
    return MalformedMessage(
        f"a {envelope.kind!r} message from {envelope.sender!r} is malformed: {detail}", reason="body", size=0
    )


def _body(envelope: Envelope) -> dict[Any, Any]:  # values are Any: each is checked before use
    if not isinstance(envelope.body, dict):
        raise bad(envelope, f"the body must be a map, got {type(envelope.body).__name__}")
    return envelope.body


def _int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value < high


def _stream(envelope: Envelope, body: dict[Any, Any]) -> int:
    stream: Any = body.get("st")
    if not _int(stream, 0, MAX_ID):
        raise bad(envelope, f"field 'st' must be a stream id, got {stream!r:.40}")
    return int(stream)


def parse_stream(envelope: Envelope) -> tuple[int, list[Any]]:
    """The stream id and the raw item list of a ``claim``, ``release`` or ``done`` message
    (a flat list read as items: see :func:`parse_items` for it as sent)."""
    stream, listed, flat = parse_items(envelope)
    return stream, nested(listed, STRIDE[envelope.kind]) if flat else listed


def parse_items(envelope: Envelope) -> tuple[int, list[Any], bool]:
    """The stream id, the raw list of a ``claim``, ``release`` or ``done`` message, and
    whether that list is flat (``"cf"``, ``"rf"``: the items end to end)."""
    body = _body(envelope)
    stream = _stream(envelope, body)
    kind = envelope.kind
    flat_key = FLAT_KEY[kind]
    flat = flat_key in body
    key = flat_key if flat else NESTED_KEY[kind]
    listed = body.get(key)
    if flat and NESTED_KEY[kind] in body:
        raise bad(envelope, f"fields {key!r} and {NESTED_KEY[kind]!r} are one list in two forms: send one")
    if type(listed) is not list or len(listed) > MAX_BATCH * (STRIDE[kind] if flat else 1):
        raise bad(envelope, f"field {key!r} must be a list of at most {MAX_BATCH} items")
    return stream, listed, flat


def nested(flat: list[Any], stride: int) -> list[list[Any]]:
    """The items of a flat list (``stride`` entries each), a short last one included."""
    return [flat[start : start + stride] for start in range(0, len(flat), stride)]


def _ids_and_attempts(ids: list[Any], attempts: list[Any]) -> bool:
    """Every entry an exact int, ids in ``0..MAX_ID-1`` and attempts in ``1..MAX_ATTEMPT``:
    :func:`_attempt_item` for a flat list's columns, at C speed."""
    return (
        len(ids) == len(attempts)
        and set(map(type, ids)) <= _INT
        and set(map(type, attempts)) <= _INT
        and (
            not ids
            or (min(ids) >= 0 and max(ids) < MAX_ID and min(attempts) > 0 and max(attempts) <= MAX_ATTEMPT)
        )
    )


_INT: Final = frozenset({int})


def parse_tickets(envelope: Envelope, count: int) -> list[bytes] | None:
    """The ``tk`` list of a ``tasks``, ``claim`` or ``release`` body: one ticket per item
    (None: the frame carries none)."""
    body = _body(envelope)
    tickets: Any = body.get("tk")
    if tickets is None:
        return None
    if type(tickets) is not list or len(tickets) != count or not all(type(t) is bytes for t in tickets):
        raise bad(envelope, f"field 'tk' must list one ticket (bytes) per item, {count} in all")
    return tickets


def parse_capacity(envelope: Envelope) -> int:
    cap: Any = _body(envelope).get("cap")
    if not _int(cap, 1, MAX_CAPACITY + 1):
        raise bad(envelope, f"field 'cap' must be an int in 1..{MAX_CAPACITY}, got {cap!r:.40}")
    return int(cap)


def parse_heartbeat(envelope: Envelope) -> float | None:
    """The ``hb`` of a hello: seconds between the worker's beats (None: it announced none)."""
    beat: Any = _body(envelope).get("hb")
    if beat is None:
        return None
    if type(beat) not in (int, float) or not MIN_HEARTBEAT <= beat <= MAX_HEARTBEAT:
        raise bad(
            envelope, f"field 'hb' must be seconds in {MIN_HEARTBEAT}..{MAX_HEARTBEAT}, got {beat!r:.40}"
        )
    return float(beat)


def _attempt_item(item: Any, length: int) -> bool:
    """``item`` is a list of ``length`` starting ``[task_id, attempt, ...]``."""
    return (
        type(item) is list
        and len(item) == length
        and type(item[0]) is int
        and type(item[1]) is int
        and 0 <= item[0] < MAX_ID
        and 0 < item[1] <= MAX_ATTEMPT
    )


def _error(value: Any) -> Failure | None:
    """A failure's ``{"type", "message"}``, or None if it is not one."""
    if not (
        type(value) is dict
        and type(value.get("type")) is str
        and 0 < len(value["type"]) <= 200
        and type(value.get("message", "")) is str
    ):
        return None
    return Failure(value["type"], value.get("message", "")[:MAX_ERROR_TEXT])


def _rejected(envelope: Envelope, listed: list[Any]) -> list[MalformedMessage]:
    """An error for each item of ``listed`` that is not a valid entry of its kind."""
    check = _reply if envelope.kind == DONE else (lambda item: item if _attempt_item(item, 2) else None)
    return [
        bad(envelope, f"item {index} is not a valid {envelope.kind} entry: {item!r:.80}")
        for index, item in enumerate(listed)
        if check(item) is None
    ]


def _reply(item: Any) -> list[Any] | None:
    if not (_attempt_item(item, 4) and type(item[2]) is bool):
        return None
    if item[2]:
        return item  # type: ignore[no-any-return]
    error = _error(item[3])
    if error is None:
        return None
    final = item[3].get("final") is True  # the worker says no retry can mend it
    return [item[0], item[1], False, Unmendable(error) if final else error]


def claims(
    envelope: Envelope, listed: list[Any], flat: bool = False
) -> tuple[Iterable[Sequence[int]], list[MalformedMessage]]:
    """The well-formed ``[task_id, attempt]`` items of a claim or release list (``flat``:
    the items end to end), and an error for each other item (to count: the good items
    around it still apply)."""
    if flat:
        ids, attempts = listed[0::2], listed[1::2]
        if _ids_and_attempts(ids, attempts):  # the usual flat list, checked a column at a time
            return zip(ids, attempts), []
        listed = nested(listed, 2)
    good = [  # _attempt_item(item, 2), inline: this runs for every task
        item
        for item in listed
        if type(item) is list
        and len(item) == 2
        and type(item[0]) is int
        and type(item[1]) is int
        and 0 <= item[0] < MAX_ID
        and 0 < item[1] <= MAX_ATTEMPT
    ]
    return good, ([] if len(good) == len(listed) else _rejected(envelope, listed))


def replies(
    envelope: Envelope, listed: list[Any], flat: bool = False
) -> tuple[Iterable[Sequence[Any]], list[MalformedMessage]]:
    """The well-formed items of a done list (``flat``: the items end to end) as
    ``[task_id, attempt, ok, value]``, where a failure's value is a :class:`Failure`, and
    an error for each other item."""
    if flat:
        ids, attempts, oks = listed[0::4], listed[1::4], listed[2::4]
        if (
            not len(listed) % 4
            and _ids_and_attempts(ids, attempts)
            and set(map(type, oks)) <= _BOOL
            and False not in oks
        ):
            return zip(ids, attempts, oks, listed[3::4]), []  # successes only, the usual list
        listed = nested(listed, 4)
    good = [  # successes, the usual items, checked inline (_reply does the same): this runs for every task
        item
        for item in listed
        if type(item) is list
        and len(item) == 4
        and item[2] is True
        and type(item[0]) is int
        and type(item[1]) is int
        and 0 <= item[0] < MAX_ID
        and 0 < item[1] <= MAX_ATTEMPT
    ]
    if len(good) == len(listed):
        return good, []
    good = [reply for reply in map(_reply, listed) if reply is not None]
    return good, _rejected(envelope, listed)


_BOOL: Final = frozenset({bool})


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of tasks as a worker receives it."""

    stream: int
    lease: float
    tasks: list[list[Any]]  # [task_id, attempt, task]
    tickets: list[bytes] | None = None  # with a secret: one per task
    kx: Any = None  # with a secret: the dispatcher's X25519 key (checked by the worker's keys)
    flat: bool = False  # ``tasks`` holds the items end to end (task_id, attempt, task, ...)

    def items(self) -> Iterable[Sequence[Any]]:
        """The ``(task_id, attempt, task)`` items, in order, whichever the form."""
        if not self.flat:
            return self.tasks
        entries = iter(self.tasks)
        return zip(entries, entries, entries)


def parse_batch(envelope: Envelope) -> Batch:
    """A ``tasks`` message; any bad item rejects the whole batch (its claims would be unsendable)."""
    body = _body(envelope)
    stream = _stream(envelope, body)
    lease: Any = body.get("lease")
    if type(lease) not in (int, float) or not (0 < lease and math.isfinite(lease)):
        raise bad(envelope, f"field 'lease' must be a positive number of seconds, got {lease!r:.40}")
    if "tf" in body:
        return _flat_batch(envelope, body, stream, float(lease))
    listed: Any = body.get("t")
    if type(listed) is not list or not 0 < len(listed) <= MAX_BATCH:
        raise bad(envelope, f"field 't' must be a list of 1..{MAX_BATCH} tasks")
    well_formed = [  # _attempt_item(item, 3), inline: this runs for every task
        item
        for item in listed
        if type(item) is list
        and len(item) == 3
        and type(item[0]) is int
        and type(item[1]) is int
        and 0 <= item[0] < MAX_ID
        and 0 < item[1] <= MAX_ATTEMPT
    ]
    if len(well_formed) != len(listed):
        index, item = next((i, item) for i, item in enumerate(listed) if not _attempt_item(item, 3))
        raise bad(envelope, f"task {index} must be [task_id, attempt, task], got {item!r:.80}")
    return Batch(stream, float(lease), listed, parse_tickets(envelope, len(listed)), body.get("kx"))


def _flat_batch(envelope: Envelope, body: dict[Any, Any], stream: int, lease: float) -> Batch:
    """A batch of ``"tf"``: the items end to end (never with tickets: a secret's batches are nested)."""
    listed: Any = body["tf"]
    if "t" in body or "tk" in body:
        raise bad(envelope, "field 'tf' (the tasks end to end) goes alone: no 't', no 'tk'")
    if type(listed) is not list or not 0 < len(listed) <= 3 * MAX_BATCH or len(listed) % 3:
        raise bad(envelope, f"field 'tf' must list 1..{MAX_BATCH} tasks as task_id, attempt, task, ...")
    if not _ids_and_attempts(listed[0::3], listed[1::3]):
        index, item = next(
            (i, item) for i, item in enumerate(nested(listed, 3)) if not _attempt_item(item, 3)
        )
        raise bad(envelope, f"task {index} must be task_id, attempt, task, got {item!r:.80}")
    return Batch(stream, lease, listed, None, body.get("kx"), flat=True)
