"""``consensus.host``: open a :class:`~consensus.room.host.Room` for the block of an ``async with``.

It builds the room, starts its background tasks in its own nursery, advertises it if asked,
and closes it (telling every member) when the block ends.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from consensus import discovery
from consensus.room.credentials import warn_if_open
from consensus.room.host import Room, log
from consensus.room.relay import RELAY_ABOVE
from consensus.room.roster import DEFAULT_MAX_MEMBERS
from consensus.runtime.service import service_nursery
from consensus.trust.secret import Secret, as_secret
from consensus.work.dispatcher_protocol import MAX_CAPACITY
from patterns import DEFAULT_MAX_MESSAGE_SIZE, TLSConfig

__all__ = ["host"]


@asynccontextmanager
async def host(address: str, *, name: str = "host", heartbeat: float = 0.5, missed_heartbeats: int = 3,
               late_window: float = 1.0, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
               tls: TLSConfig | None = None, max_members: int = DEFAULT_MAX_MEMBERS,
               member_calls: bool = True, secret: Secret | bytes | str | None = None,
               advertise: str | None = None, max_capacity: int = MAX_CAPACITY,
               relay_above: int | None = RELAY_ABOVE) -> AsyncIterator[Room]:  # fmt: skip
    """Host a room at ``address`` (``tcp://H:P``, ``tls+tcp://H:P`` or ``ipc:///path``); yields the
    :class:`Room`.

    ``heartbeat`` is the interval members are told to keep; a member silent for
    ``missed_heartbeats`` intervals is dropped. Replies arriving up to ``late_window``
    seconds after a poll's deadline are counted as late. ``tls`` (a server configuration)
    goes to every socket of the room. At most ``max_members`` members are admitted; a join
    past it is refused (the room is full), counted in ``refused_joins``. With
    ``member_calls=False`` members may not ask the host to run polls or votes (``member.poll`` / ``member.vote`` raise
    :class:`~consensus.errors.MemberCallRefused`). With ``secret`` (bytes, str or a
    :class:`~consensus.Secret`) only members holding the same secret get in, and every frame
    is authenticated (``docs/security.md``); without one the room trusts its network.
    With ``advertise="team-a"`` the room is
    announced on the LAN by multicast DNS while it is open, for ``join("mdns://team-a")`` and
    :func:`consensus.discover` (``consensus/discovery.py``; needs the ``discovery`` extra).
    ``max_capacity`` caps the tasks one member's worker may hold at once (``docs/work.md``).
    Past ``relay_above`` members (None: never) the members link to the host only and the
    host relays their broadcasts (:mod:`consensus.room.relay`, ``docs/scale.md``).
    """
    secret = as_secret(secret)
    room = Room(address, name=name, heartbeat=heartbeat, missed_heartbeats=missed_heartbeats,
                late_window=late_window, max_message_size=max_message_size, tls=tls,
                max_members=max_members, member_calls=member_calls, secret=secret,
                max_capacity=max_capacity, relay_above=relay_above)  # fmt: skip
    warn_if_open(log, address, secret)
    async with room._surveyor, room._control, room._mesh, room._dispatcher, service_nursery() as nursery:
        room._surveying.start(nursery)
        room._membership.start(nursery)
        nursery.start_soon(functools.partial(room._inbox.pump, room._mesh, own=name, on_each=room._relay))
        try:
            async with discovery.advertised(advertise, address, secret=secret is not None, tls=tls is not None):
                yield room
        finally:
            await room.close()
            nursery.cancel_scope.cancel()
            room._inbox.close()
