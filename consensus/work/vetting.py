"""The dispatcher's checks with a secret: whose hello names whom, and who may claim or answer
an attempt (pure; :class:`~consensus.work.dispatcher_protocol.DispatcherProtocol` calls them).

The seal already proved the frame comes from a holder of the secret, and that a session
frame speaks for its own worker only. What is left: a hello must name the worker's own key
and may not take a name another live session holds; a first claim or a release must quote
the attempt's ticket (only the worker the batch went to read it); a result counts only from
the worker holding the claim of the attempt in flight. What fails is refused as
:class:`~patterns.Unauthenticated` and counted.
"""

from __future__ import annotations

import hmac
from typing import Any

from consensus.trust.work import DispatcherKeys, parse_task_pipes, session_kid
from consensus.work import protocol as W
from consensus.work.ledger import TaskLedger
from patterns import Envelope, Unauthenticated

__all__ = ["hello_problem", "vet"]


def _refuse(envelope: Envelope, detail: str, reason: str) -> Unauthenticated:
    return Unauthenticated(f"refused a {envelope.kind!r} from worker {envelope.sender!r}: {detail}",
                           reason=reason, size=0)  # fmt: skip


def hello_problem(keys: DispatcherKeys, envelope: Envelope, *, live: bool) -> None:
    """Raise :class:`Unauthenticated` unless the hello ``envelope`` is its worker's own:
    its key matches its seal, its body is whole, and its name is free or already this
    session's (``live``: the name's worker has other connections up)."""
    body = envelope.body if isinstance(envelope.body, dict) else {}
    problem = keys.hello_problem(envelope.session, body.get("kx"))
    if problem is not None:
        raise _refuse(envelope, problem, "hello")
    try:
        parse_task_pipes(body.get("tp"))
    except ValueError as exc:
        raise W.bad(envelope, str(exc)) from None
    bound = keys.session_of(envelope.sender) if isinstance(envelope.sender, str) else None
    if live and bound is not None and bound != session_kid(body["kx"], keys.kx):
        raise _refuse(envelope, "another worker's session holds that name", "name")


def _all_valid(keys: DispatcherKeys, stream: int, listed: list[Any], tickets: list[bytes]) -> bool:
    if not all(type(item) is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is int
               and 0 <= item[0] < 2**63 and 0 <= item[1] < 2**63 for item in listed):  # fmt: skip
        return False
    return hmac.compare_digest(b"".join(tickets), b"".join(keys.tickets(stream, listed)))


def vet(keys: DispatcherKeys, ledger: TaskLedger, stream: int, envelope: Envelope, worker: str,
        listed: list[Any]) -> tuple[list[Any], list[Exception]]:  # fmt: skip
    """The items of a claim, release or done list that ``worker`` may send, and an error for
    each item it may not (items of the wrong shape pass through: the ledger's checks count
    them as malformed)."""
    kind = envelope.kind
    tickets = W.parse_tickets(envelope, len(listed)) if kind != W.DONE else None
    if tickets is not None and _all_valid(keys, stream, listed, tickets):
        return listed, []  # the usual claim on receipt: every ticket good, checked in one pass
    kept: list[Any] = []
    refused: list[Exception] = []
    for index, item in enumerate(listed):
        if not (type(item) is list and len(item) >= 2 and type(item[0]) is int and type(item[1]) is int):
            kept.append(item)
            continue
        task_id, attempt = item[0], item[1]
        if ledger.holder(task_id, attempt) == worker:  # a renewal, or an answer from the holder
            kept.append(item)
        elif (
            tickets is not None
            and 0 <= task_id < 2**63
            and 0 <= attempt < 2**63
            and hmac.compare_digest(tickets[index], keys.ticket(stream, task_id, attempt))
        ):
            kept.append(item)  # the worker the attempt was pushed to: it read the ticket
        else:
            what = "holds no claim on" if kind == W.DONE else "quotes no valid ticket for"
            refused.append(_refuse(envelope, f"it {what} attempt {attempt} of task {task_id}", "claim"))
    return kept, refused
