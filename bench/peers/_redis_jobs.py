"""The child side of the Redis Streams measurements (redis-py, blocking calls, hiredis parser if present).

Both loops send what they owe and ask for more in one pipeline (one round trip per
batch): the XADDs of the replies or results, the XACK of the entries they answer, and
the next ``XREADGROUP ... COUNT c BLOCK b``. They stop when the parent says so (checked
between batches; ``BLOCK_MS`` bounds the wait).
"""

from __future__ import annotations

import multiprocessing.connection
from typing import Any

import redis

from .._children import stop_requested
from .._placement import address

Conn = multiprocessing.connection.Connection
BLOCK_MS = 100  # an idle loop looks at its pipe this often
REPLY_MAXLEN = 16  # request/reply streams are trimmed (approximately) to about this many entries


def _entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return response[0][1] if response else []


def work(conn: Conn, port: int, stream: str, group: str, consumer: str, results: str, count: int) -> int:
    """A worker in ``group``: read up to ``count`` tasks, XADD each (as its result) to ``results``, XACK them."""
    r = redis.Redis(host=address(), port=port)
    done = 0
    try:
        conn.send(("ready", consumer))
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        while True:
            stopping = stop_requested(conn)
            pipe = r.pipeline(transaction=False)
            for _, fields in entries:
                pipe.xadd(results, {b"r": fields[b"t"]})
            if entries:
                pipe.xack(stream, group, *(eid for eid, _ in entries))
            done += len(entries)
            if stopping:
                if entries:
                    pipe.execute()
                return done
            pipe.xreadgroup(group, consumer, {stream: ">"}, count=count, block=BLOCK_MS)
            entries = _entries(pipe.execute()[-1])
    finally:
        r.close()


def serve(conn: Conn, port: int, stream: str, group: str, count: int) -> int:
    """A request/reply server: XADD each request's data to the stream named in its ``r`` field, XACK."""
    r = redis.Redis(host=address(), port=port)
    answered = 0
    try:
        conn.send(("ready", None))
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        while True:
            pipe = r.pipeline(transaction=False)
            for _, fields in entries:
                pipe.xadd(fields[b"r"], {b"d": fields[b"d"]}, maxlen=REPLY_MAXLEN, approximate=True)
            if entries:
                pipe.xack(stream, group, *(eid for eid, _ in entries))
            answered += len(entries)
            if stop_requested(conn):
                if entries:
                    pipe.execute()
                return answered
            pipe.xreadgroup(group, "server", {stream: ">"}, count=count, block=BLOCK_MS)
            entries = _entries(pipe.execute()[-1])
    finally:
        r.close()
