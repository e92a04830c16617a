"""``consensus.join``: open a :class:`~consensus.room.member.Member` for the block of an ``async with``.

It starts the member's tasks in its own nursery, joins (or raises), runs the optional worker,
and leaves cleanly when the block ends; the membership itself is :mod:`consensus.room.member`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Literal

import trio

from consensus import discovery
from consensus.room.loop_surveys import READ_ON, LoopSurveys
from consensus.room.member import Member, log
from consensus.room.thread_surveys import READ_IN_THREAD, ThreadSurveys
from consensus.runtime.handlers import Handler
from consensus.runtime.service import service_nursery
from consensus.trust.identity import Identity
from consensus.trust.secret import Secret, as_secret
from consensus.work.worker import Worker
from patterns import DEFAULT_MAX_MESSAGE_SIZE, TLSConfig

__all__ = ["join"]


@asynccontextmanager
async def join(address: str, *, name: str, on_poll: Handler | None = None, on_vote: Handler | None = None,
               on_ask: Handler | None = None, on_task: Handler | None = None, task_concurrency: int = 1, task_prefetch: int | None = None,
               join_timeout: float | None = 10.0, handler_timeout: float | None = None, handler_threads: int = 8,
               max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, tls: TLSConfig | None = None,
               shared_memory: bool = True, observer: bool = False, host_timeout: float | None = None,
               on_host_lost: Literal["wait", "exit"] = "wait",
               on_deliberate: Handler | None = None,
               secret: Secret | bytes | str | None = None, identity: Identity | None = None,
               listen: str | None = None, line_ports: range | str | None = None) -> AsyncIterator[Member]:  # fmt: skip
    """Join the room hosted at ``address`` as ``name``; yields the :class:`Member`.
    ``address`` may be ``mdns://team-a``: the room advertised on the LAN as ``team-a``
    (``consensus.host(..., advertise="team-a")``; ``consensus/discovery.py``).

    With ``on_task``, the member also works: it takes tasks from the host's
    ``room.distribute`` and returns ``on_task(task)`` (plain or async), running
    ``task_concurrency`` at once and holding ``task_prefetch`` more (default: as many
    again); see :class:`consensus.Worker`. ``member.worker`` is that worker.
    ``on_ask`` answers asks on this member's hotlines (:meth:`Member.hotline`), as in
    :func:`consensus.hotline`, and the host's ``room.ask`` / ``room.send`` to this member.

    ``tls`` (a client configuration) goes to every socket of the member; with
    ``shared_memory=False`` the member takes no shared-memory references, and says so
    in its join (the room then sends it everything inline). With ``observer=True`` the
    member is in the room (a name, hotlines, broadcasts, decisions, and it may call
    :meth:`Member.poll` / :meth:`Member.vote`) but never in an electorate nor expected in
    a poll; it is listed in ``room.observers``, not ``room.members``.

    Raises :class:`~patterns.NameTaken` if a live member holds the name (also later,
    if this member falls silent long enough for another to take its name) and
    :class:`~patterns.RoomUnavailable` if no host answers within ``join_timeout``
    (``None``: wait for ever, logging a line every 30 s while waiting).

    The host heartbeats on the control bus: silent for ``host_timeout`` seconds (default
    4 of the host's heartbeat intervals) or with its connection closed, it is *lost*
    (``member.host_connected`` turns False, :meth:`Member.wait_host_changed` wakes). With
    ``on_host_lost="wait"`` the member keeps its handlers and rejoins by itself when the
    host is back; with ``"exit"`` the ``async with`` body is cancelled and the block ends
    with :class:`~consensus.errors.RoomClosed`. ``on_deliberate(question, round, others,
    options)`` answers the host's ``room.deliberate`` rounds (``others``: the previous
    round's positions except this member's own, as ``Seen(label, position)``; ``options``:
    None for an open question) with a ``Position`` or a stance (text); without it, the
    ``on_poll`` answer (``str()`` of it) is the stance. When the host closes the room
    (``room.close()`` or the end of its ``async with``), the block ends with
    :class:`~consensus.errors.RoomClosed` within a second, whatever ``on_host_lost`` says.
    Plain handlers run in at most ``handler_threads`` threads at once; a handler
    still running at its deadline is reported as a ``Timeout`` error and its thread
    abandoned until it returns.

    Ports a firewall can name: ``listen="tcp://0.0.0.0:7410"`` is where this member's mesh
    bus listens (default: an ephemeral port on the address of its control connection; a
    wildcard host is announced to the room as that address); ``line_ports`` (a
    ``range(7420, 7430)`` or text ``"7420-7429"``) are the ports its room hotlines listen
    at, the first free one each (one per line this member listens for: to the members
    whose names sort after its own); a line finding all taken fails with ``LineError``.
    In a ``ws://`` room the lines share the mesh's one port (``listen="ws://0.0.0.0:7410"``).
    """
    address = await discovery.joinable(address, join_timeout)  # mdns://name: the address it advertises
    member = Member(address, name=name, on_poll=on_poll, on_vote=on_vote, on_ask=on_ask,
                    handler_timeout=handler_timeout, handler_threads=handler_threads,
                    max_message_size=max_message_size, tls=tls, shared_memory=shared_memory,
                    observer=observer, host_timeout=host_timeout, on_host_lost=on_host_lost,
                    on_deliberate=on_deliberate, secret=as_secret(secret), identity=identity,
                    listen=listen, line_ports=line_ports)  # fmt: skip
    async with member._respondent, member._control, member._mesh, service_nursery() as nursery:
        member._nursery = nursery
        nursery.start_soon(member._control_loop)
        lent = _lend_surveys(member)  # through consensus.aio: its loop reads them (docs/asyncio.md §4.6)
        member._answerer.start(nursery)  # a survey before the welcome is kept, then answered
        member._directs.start(nursery)
        member._lines.start(nursery)
        nursery.start_soon(functools.partial(member._inbox.pump, member._mesh, member._lines.on_envelope,
                                             own=member.name))  # fmt: skip
        try:
            await member._join(join_timeout)
            log.info("member %r joined the room at %s%s", name, address, " as an observer" * observer)
            nursery.start_soon(member._heartbeats)
            nursery.start_soon(member._watch_host)
            async with AsyncExitStack() as work:
                if on_task is not None:  # after the join: the name is the room's now
                    member.worker = await work.enter_async_context(
                        Worker(tasks=member.endpoints.tasks, results=member.endpoints.results, name=name,
                               handler=on_task, concurrency=task_concurrency, prefetch=task_prefetch,
                               handler_threads=handler_threads, max_message_size=max_message_size, tls=tls,
                               secret=secret)
                    )  # fmt: skip
                yield member
            member._beats.cancel()  # no heartbeat may follow the leave and re-admit us
            with trio.move_on_after(0.5) as scope:
                scope.shield = True
                await member._send(member._protocol.leave_frame())
        finally:
            if lent is not None:  # the loop lets go of the socket before it closes
                await lent.aclose()
            nursery.cancel_scope.cancel()
            member._inbox.close()
            member._lines.close()
            member._decisions_send.close()


def _lend_surveys(member: Member) -> LoopSurveys | ThreadSurveys | None:
    """Lend the member's surveys to the asyncio loop that opens it through ``consensus.aio``
    (:data:`~consensus.room.loop_surveys.READ_ON`), or to the survey reader thread when
    ``consensus.blocking`` opens it (:data:`~consensus.room.thread_surveys.READ_IN_THREAD`),
    before trio ever reads them."""
    if READ_IN_THREAD.get():
        threaded = member._answerer.lend_thread()
        if threaded is not None:
            threaded.start()
        return threaded
    loop = READ_ON.get()
    if loop is None or loop.is_closed():
        return None
    lent = member._answerer.lend(loop)
    if lent is not None:
        try:
            loop.call_soon_threadsafe(lent.start)
        except RuntimeError:  # closed meanwhile: trio reads after all
            member._answerer.unlend()
            return None
    return lent
