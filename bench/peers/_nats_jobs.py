"""The child side of the NATS measurements (nats-py under asyncio): responders and JetStream workers.

Each runs in a spawned child (:mod:`bench._children`), answers ``("ready", ...)``
once its subscriptions are known to the server (a flush), and runs until the parent
says stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
from typing import Any

import nats

from .._children import until_stop

Conn = multiprocessing.connection.Connection


def respond(conn: Conn, url: str, subject: str, count: int) -> int:
    """``count`` connections, each subscribed to ``subject``, each answering every request with its data."""
    return asyncio.run(_respond(conn, url, subject, count))


async def _respond(conn: Conn, url: str, subject: str, count: int) -> int:
    answered = 0
    clients: list[Any] = []
    try:
        for _ in range(count):
            nc = await nats.connect(url, allow_reconnect=False)
            clients.append(nc)

            async def on_request(msg: Any, nc: Any = nc) -> None:
                nonlocal answered
                await nc.publish(msg.reply, msg.data)
                answered += 1

            await nc.subscribe(subject, cb=on_request)
        for nc in clients:
            await nc.flush()
        conn.send(("ready", count))
        await until_stop(conn)
    finally:
        for nc in clients:
            await nc.close()
    return answered


def work(conn: Conn, url: str, stream: str, durable: str, batch: int, results: str) -> int:
    """A JetStream worker: fetch up to ``batch`` tasks, publish each result on ``results``, ack each."""
    return asyncio.run(_work(conn, url, stream, durable, batch, results))


async def _work(conn: Conn, url: str, stream: str, durable: str, batch: int, results: str) -> int:
    done = 0
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        psub = await js.pull_subscribe_bind(durable, stream)

        stopping = asyncio.Event()

        async def loop() -> None:
            nonlocal done
            publish = nc.publish
            while not stopping.is_set():
                try:
                    msgs = await psub.fetch(batch, timeout=1.0)
                except TimeoutError:  # nats.errors.TimeoutError, or the plain one nats-py also raises
                    # (for a fetch cancelled at the stop, too: the flag ends the loop then)
                    continue
                for msg in msgs:
                    await publish(results, msg.data)  # the result first, then the ack: at least once
                    await msg.ack()
                done += len(msgs)

        conn.send(("ready", None))
        worker = asyncio.create_task(loop())
        await until_stop(conn)
        stopping.set()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await worker
        await nc.flush()
    finally:
        await nc.close()
    return done
