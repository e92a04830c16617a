"""The work-sharing protocol's frames: the message kinds and every body sent.

Bodies are those drawn in :mod:`consensus.work.protocol`, which checks what comes in; each is built by one ``*_frame``
function here and nowhere else. :func:`send_halving` sends a frame whose items have no wire
form, or are too many bytes, by halves down to the item at fault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from patterns import EncodeError, MessageError, MessageTooLarge

__all__ = [
    "BEAT", "BYE", "CLAIM", "DONE", "FLAT_KEY", "HELLO", "MAX_BATCH", "NESTED_KEY", "RELEASE", "STRIDE", "TASKS",
    "Frame", "beat_frame", "bye_frame", "claim_frame", "done_frame", "flat_done_frame", "frame_items",
    "hello_frame", "per_stream", "release_frame", "send_halving", "tasks_frame",
]  # fmt: skip

T = TypeVar("T")

TASKS: Final = "tasks"
HELLO: Final = "hello"
CLAIM: Final = "claim"
RELEASE: Final = "release"
DONE: Final = "done"
BYE: Final = "bye"
BEAT: Final = "beat"

MAX_BATCH: Final = 65536  # items in one message
STRIDE: Final = {TASKS: 3, CLAIM: 2, RELEASE: 2, DONE: 4}  # entries of one item in a flat list
NESTED_KEY: Final = {TASKS: "t", CLAIM: "c", RELEASE: "c", DONE: "r"}  # where a frame keeps its list
FLAT_KEY: Final = {TASKS: "tf", CLAIM: "cf", RELEASE: "cf", DONE: "rf"}  # ... or its flat list


@dataclass(frozen=True, slots=True)
class Frame:
    """A message to send: its kind and its body (built by the functions below, nowhere else)."""

    kind: str
    body: dict[str, Any]


def _listed(items: Sequence[T]) -> list[T]:
    return items if type(items) is list else list(items)  # a batch's own list is not copied again


def _with_tickets(body: dict[str, Any], tickets: list[bytes] | None) -> dict[str, Any]:
    if tickets is not None:
        body["tk"] = tickets
    return body


def tasks_frame(stream: int, lease: float, items: Sequence[Any], *, tickets: list[bytes] | None = None,
                kx: bytes | None = None, flat: bool = False) -> Frame:  # fmt: skip
    """A batch of ``[task_id, attempt, task]`` for one stream (with a secret: its tickets
    and the dispatcher's key); ``flat``: ``items`` holds them end to end (``"tf"``)."""
    body = _with_tickets({"st": stream, "lease": lease, "tf" if flat else "t": _listed(items)}, tickets)
    if kx is not None:
        body["kx"] = kx
    return Frame(TASKS, body)


def hello_frame(capacity: int, *, kx: bytes | None = None, task_pipes: Iterable[str] = (),
                heartbeat: float | None = None, flat: bool = False) -> Frame:  # fmt: skip
    """The worker's capacity, its task connections' local addresses and its heartbeat period
    (with a secret: also its key); ``flat``: it reads flat batches (``"fl": true``)."""
    body: dict[str, Any] = {"cap": capacity, "tp": sorted(task_pipes)}
    if flat:
        body["fl"] = True
    if heartbeat is not None:
        body["hb"] = heartbeat
    if kx is not None:
        body["kx"] = kx
    return Frame(HELLO, body)


def claim_frame(stream: int, items: Sequence[Any], tickets: list[bytes] | None = None, *,
                flat: bool = False) -> Frame:  # fmt: skip
    """``[task_id, attempt]`` items the worker holds (on receipt, with a secret: their
    tickets); ``flat``: ``items`` holds them end to end (``"cf"``)."""
    return Frame(CLAIM, _with_tickets({"st": stream, "cf" if flat else "c": _listed(items)}, tickets))


def release_frame(stream: int, items: Sequence[list[int]], tickets: list[bytes] | None = None) -> Frame:
    """``[task_id, attempt]`` items handed back unstarted (with a secret: their tickets)."""
    return Frame(RELEASE, _with_tickets({"st": stream, "c": _listed(items)}, tickets))


def done_frame(stream: int, items: Sequence[Any], *, flat: bool = False) -> Frame:
    """``[task_id, attempt, ok, value]`` items, a failure's value in its wire form (with
    ``"final": true`` when no retry can mend it: the dispatcher then ends the task at once);
    ``flat``: ``items`` holds them end to end (``"rf"``)."""
    return Frame(DONE, {"st": stream, "rf" if flat else "r": _listed(items)})


def flat_done_frame(stream: int, items: Sequence[Any]) -> Frame:
    """:func:`done_frame` of a flat list (for :func:`per_stream`)."""
    return Frame(DONE, {"st": stream, "rf": _listed(items)})


def frame_items(frame: Frame) -> list[Any]:
    """The item list of a frame with one (tasks, claim, release or done), in its form."""
    body = frame.body
    flat = body.get(FLAT_KEY[frame.kind])
    return body[NESTED_KEY[frame.kind]] if flat is None else flat  # type: ignore[no-any-return]


def bye_frame() -> Frame:
    return Frame(BYE, {})


def beat_frame() -> Frame:
    return Frame(BEAT, {})


def per_stream(build: Callable[[int, list[T]], Frame], lists: Mapping[int, list[T]],
               stride: int = 1) -> list[Frame]:  # fmt: skip
    """``build(stream, items)`` for each stream's items, at most ``MAX_BATCH`` to a frame
    (``stride``: the lists are flat, that many entries an item)."""
    step = MAX_BATCH * stride
    return [
        build(stream, items[start : start + step])
        for stream, items in lists.items()
        for start in range(0, len(items), step)
    ]


async def send_halving(
    frame: Frame,
    send: Callable[[Frame], Awaitable[None]],
    unsendable: Callable[[int, list[Any], MessageError], Awaitable[None]],
) -> None:
    """Send ``frame`` (a frame with an item list: tasks, claim, release or done); if it
    has no wire form or is too large, send each half of its items the same way, down to
    the item at fault, which goes to ``unsendable(stream, item, error)``."""
    try:
        await send(frame)
        return
    except (EncodeError, MessageTooLarge) as exc:
        flat = FLAT_KEY[frame.kind] in frame.body
        key = FLAT_KEY[frame.kind] if flat else NESTED_KEY[frame.kind]
        stride = STRIDE[frame.kind] if flat else 1
        items = frame.body[key]
        if len(items) <= stride:
            await unsendable(frame.body["st"], items if flat else items[0], exc)  # the item as a list
            return
    half = len(items) // stride // 2
    tickets = frame.body.get("tk")  # (only nested lists carry tickets)
    for part, entries in (
        (slice(None, half), slice(None, half * stride)),
        (slice(half, None), slice(half * stride, None)),
    ):
        body = {**frame.body, key: items[entries]}
        if tickets is not None:  # each half keeps the tickets of its own items
            body["tk"] = tickets[part]
        await send_halving(Frame(frame.kind, body), send, unsendable)
