"""The child side of the pyzmq measurements: echo peers and scatter-gather respondents.

Each function runs in a spawned child (:mod:`bench._children`) and is started by the
parent with ``start_job``. An empty frame ends an echo or a respondent.
"""

from __future__ import annotations

import asyncio
import multiprocessing.connection
from typing import Any

import zmq
import zmq.asyncio

from .._children import LIFETIME_S

Conn = multiprocessing.connection.Connection
LIFETIME_MS = int(LIFETIME_S * 1000)
COPY_THRESHOLD = 65536  # below it, bytes (copy=True) are cheaper than zero-copy Frames


def echo(conn: Conn, pattern: str, style: str, address: str, copy: bool) -> int:
    """Echo every frame until an empty one: ``pair`` dials ``address``; ``router`` binds it."""
    if style == "sync":
        return _echo_sync(conn, pattern, address, copy)
    return asyncio.run(_echo_async(conn, pattern, address, copy))


def _open(ctx: Any, pattern: str, address: str) -> tuple[Any, str]:
    if pattern == "pair":
        sock = ctx.socket(zmq.PAIR)
        sock.linger = 0
        sock.connect(address)
        return sock, address
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    if address.endswith(":*"):
        sock.bind(address)
        return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.bind(address)
    return sock, address


def _echo_sync(conn: Conn, pattern: str, address: str, copy: bool) -> int:
    ctx = zmq.Context()
    count = 0
    try:
        sock, endpoint = _open(ctx, pattern, address)
        sock.rcvtimeo = LIFETIME_MS
        conn.send(("ready", endpoint))
        if pattern == "pair":
            recv, send = sock.recv, sock.send
        else:
            recv, send = sock.recv_multipart, sock.send_multipart
        while len(frame := recv(copy=copy)) and (pattern == "pair" or len(frame[-1])):
            send(frame, copy=copy)
            count += 1
    finally:
        ctx.destroy(linger=0)
    return count


async def _echo_async(conn: Conn, pattern: str, address: str, copy: bool) -> int:
    ctx = zmq.asyncio.Context()
    count = 0
    try:
        sock, endpoint = _open(ctx, pattern, address)
        conn.send(("ready", endpoint))
        if pattern == "pair":
            recv, send = sock.recv, sock.send
        else:
            recv, send = sock.recv_multipart, sock.send_multipart
        async with asyncio.timeout(LIFETIME_S):
            while len(frame := await recv(copy=copy)) and (pattern == "pair" or len(frame[-1])):
                await send(frame, copy=copy)
                count += 1
    finally:
        ctx.destroy(linger=0)
    return count


def respond(conn: Conn, address: str, identities: list[bytes]) -> int:
    """One DEALER per identity dials the ROUTER at ``address``, says hello, and echoes each request.

    One thread polls all of them (a ``zmq.Poller``), draining each ready socket.
    """
    ctx = zmq.Context()
    answered = 0
    try:
        socks = []
        poller = zmq.Poller()
        for ident in identities:
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.setsockopt(zmq.ROUTING_ID, ident)
            sock.connect(address)
            sock.send(b"hello")  # queued until connected: the ROUTER counts the hellos
            poller.register(sock, zmq.POLLIN)
            socks.append(sock)
        conn.send(("ready", len(socks)))
        open_socks = len(socks)
        while open_socks:
            events = poller.poll(LIFETIME_MS)
            if not events:
                break
            for sock, _ in events:
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if not frame:
                        poller.unregister(sock)
                        open_socks -= 1
                        break
                    sock.send(frame)
                    answered += 1
    finally:
        ctx.destroy(linger=0)
    return answered
