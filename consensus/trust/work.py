"""The keys of work sharing with a secret: who may hold tasks, and whose results count.

Work runs over two one-way channels (dispatcher push -> worker pull for tasks, worker
push -> dispatcher pull for everything else), so neither side can answer the other on
the connection it heard it on. ``docs/work.md`` ("With a secret") has the full picture:

1. A worker's ``hello`` is sealed under its *join key* (derived from the room key and
   its key id, as in a room): it proves the secret without showing it, and carries the
   worker's X25519 public key (``kx``) and the local addresses of its task connections
   (``tp``).
2. Every ``tasks`` batch is sealed under the dispatcher's epoch key (any holder of the
   secret can check it, nobody else can make one) and carries the dispatcher's X25519
   public key, and one *ticket* per task: a MAC of (stream, task, attempt) under a key
   only the dispatcher holds.
3. Both ends derive the worker's *session key* from X25519 (dispatcher, worker), salted
   with the room key: only they know it. ``claim``, ``release``, ``done``, ``beat`` and ``bye`` go
   under it, and the session speaks for the name its hello claimed, only.
4. A first claim (or a release) of an attempt must quote the attempt's ticket: only the
   worker that received the batch has read it, so a worker cannot claim, and then answer
   for, a task pushed to another by guessing its id. A result counts only from the worker
   holding the claim of the current attempt.
5. A task connection (the dispatcher's push) whose remote address no authenticated hello
   listed is held: no batch goes out while one is young, and it is closed after
   :data:`VOUCH_GRACE` (:class:`TaskPipes`), so push never hands a stranger a batch.

Everything here is pure.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consensus.trust.guard import Guard, Key
from consensus.trust.seal import MacSender, Scheme
from consensus.trust.secret import Secret, key_id, prf, session_key

__all__ = [
    "SESSION_KINDS",
    "VOUCH_GRACE",
    "DispatcherKeys",
    "TaskPipes",
    "WorkerKeys",
    "join_kid",
    "parse_task_pipes",
    "session_kid",
]

HELLO: Final = "hello"  # the only kind a join key may send
SESSION_KINDS: Final = frozenset({"claim", "release", "done", "beat", "bye"})
TICKET: Final = 8  # bytes
VOUCH_GRACE: Final = 0.5
"""Seconds a task connection no authenticated worker vouched for holds the batches, then is closed."""
VOUCH_PENALTY: Final = 5.0
"""Seconds after such a closure during which that host's unvouched connections are closed at once."""
MAX_TASK_PIPES: Final = 16  # addresses one hello may vouch for

_RAW = (Encoding.Raw, PublicFormat.Raw)


def join_kid(kx: bytes) -> bytes:
    """The key id of a worker's hello: it names the worker's X25519 key."""
    return key_id(b"work join", kx)


def session_kid(worker_kx: bytes, dispatcher_kx: bytes) -> bytes:
    return key_id(b"work session", worker_kx + dispatcher_kx)


def _session_key(room: bytes, shared: bytes, worker_kx: bytes, dispatcher_kx: bytes) -> bytes:
    return session_key(room, shared, b"nngc work session" + worker_kx + dispatcher_kx)


def _check_kx(value: object) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise ValueError("'kx' must be a 32-byte X25519 public key")
    return value


class DispatcherKeys:
    """The dispatcher's side: its epoch key, its X25519 key, the workers' sessions, tickets."""

    def __init__(self, secret: Secret) -> None:
        self._room = secret.room_key
        self._kx = X25519PrivateKey.generate()
        self.kx = self._kx.public_key().public_bytes(*_RAW)
        # keyed with a key never sent: only this process can make a ticket (copied per ticket: cheaper than keying)
        self._tickets = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=TICKET)
        epoch = secrets.token_bytes(8)
        self.tasks = Guard(
            MacSender(epoch, prf(self._room, b"dispatcher", epoch)), what="dispatcher's tasks socket"
        )
        self.results = Guard(learn=self._learn, what="dispatcher's results socket")
        self._sessions: dict[str, bytes] = {}  # worker name -> its session kid

    def _learn(self, kid: bytes) -> Key | None:
        # Any unknown key id may be a worker's hello: its key follows from the id and the secret.
        return Key(kid, Scheme.MAC, prf(self._room, b"work join", kid), kinds=frozenset({HELLO}))

    def hello_problem(self, session: bytes | None, kx: object) -> str | None:
        """Why a hello that came under the key ``session`` and names ``kx`` is not a worker's
        own (None: it is)."""
        try:
            key = _check_kx(kx)
        except ValueError as exc:
            return str(exc)
        if session != join_kid(key):
            return "its X25519 key is not the one its seal names"
        return None

    def session_of(self, name: str) -> bytes | None:
        """The key id of the session ``name`` is bound to (None: none)."""
        return self._sessions.get(name)

    def bind(self, name: str, kx: bytes) -> bool:
        """The worker ``name`` said hello with ``kx``: its session's frames speak for ``name``
        only. Returns True when the session is new (a first hello, or a new process)."""
        kid = session_kid(kx, self.kx)
        old = self._sessions.get(name)
        if old == kid:
            return False
        if old is not None:
            self.results.drop(old)
        shared = self._kx.exchange(X25519PublicKey.from_public_bytes(kx))
        key = _session_key(self._room, shared, kx, self.kx)
        self.results.add(Key(kid, Scheme.MAC, prf(key, b"results"), owner=name, kinds=SESSION_KINDS))
        self._sessions[name] = kid
        return True

    def forget(self, name: str) -> None:
        """``name`` left: its session's key goes (a new hello makes a new one)."""
        kid = self._sessions.pop(name, None)
        if kid is not None:
            self.results.drop(kid)

    def tickets(self, stream: int, items: Iterable[list[Any]]) -> list[bytes]:
        """One ticket per ``[task_id, attempt, ...]`` item of a batch for ``stream``."""
        base = self._tickets.copy()
        base.update(b"%d " % stream)
        out = []
        for item in items:
            h = base.copy()
            h.update(b"%d %d" % (item[0], item[1]))
            out.append(h.digest())
        return out

    def ticket(self, stream: int, task_id: int, attempt: int) -> bytes:
        h = self._tickets.copy()
        h.update(b"%d %d %d" % (stream, task_id, attempt))
        return h.digest()


class WorkerKeys:
    """A worker's side: its X25519 key, its join key, the session with the dispatcher."""

    def __init__(self, secret: Secret, name: str) -> None:
        self._room = secret.room_key
        self.name = name
        self._kx = X25519PrivateKey.generate()
        self.kx = self._kx.public_key().public_bytes(*_RAW)
        join = join_kid(self.kx)
        self.tasks = Guard(learn=self._learn, what=f"worker {name!r}'s tasks socket")
        self.results = Guard(what=f"worker {name!r}'s results socket")
        self.results.by_kind[HELLO] = MacSender(join, prf(self._room, b"work join", join))
        self.dispatcher: bytes | None = None

    @property
    def ready(self) -> bool:
        """True once the dispatcher's key is known: claims, results and bye can be sealed."""
        return self.dispatcher is not None

    def _learn(self, kid: bytes) -> Key | None:
        return Key(kid, Scheme.MAC, prf(self._room, b"dispatcher", kid))  # any epoch of a dispatcher

    def dispatcher_key(self, kx: object) -> bool:
        """A batch named the dispatcher's key ``kx``: True when it is new (a first batch, or a
        restarted dispatcher), and the session key changed with it. Raises ValueError for
        something that is no key."""
        key = _check_kx(kx)
        if key == self.dispatcher:
            return False
        self.dispatcher = key
        shared = self._kx.exchange(X25519PublicKey.from_public_bytes(key))
        session = _session_key(self._room, shared, self.kx, key)
        self.results.sender = MacSender(session_kid(self.kx, key), prf(session, b"results"))
        return True


@dataclass(slots=True)
class _Pipe:
    address: str
    since: float


def _host(address: str) -> str:
    """The remote host of a connection (``"10.0.0.7:38184"`` -> ``"10.0.0.7"``)."""
    host, colon, _ = address.rpartition(":")
    return host if colon else address


class TaskPipes:
    """The dispatcher's task connections and who vouched for them (pure; with a secret).

    Push hands each batch to a connection of its own choosing, so the only way to keep
    tasks from a stranger is to have no stranger's connection: a task connection is
    *vouched* when an authenticated worker's hello lists its remote address as one of its
    own (before or after the connection shows up here). While a connection is unvouched
    and younger than ``grace``, batches wait (:attr:`held`); then it is closed
    (:meth:`due`), and for ``penalty`` seconds the next unvouched connections from that
    host are turned away before they carry anything (:meth:`admit`, called by the socket
    on NNG's thread, which also holds the batches from the moment a connection arrives,
    before the trio side hears of it): a stranger that keeps dialing holds the batches for
    at most ``grace`` every ``penalty``. Pure but for a lock: admit() runs on NNG's threads. On ipc and inproc every
    connection has the same address: there the socket file's permissions keep strangers out."""

    def __init__(self, grace: float = VOUCH_GRACE, penalty: float = VOUCH_PENALTY) -> None:
        self.grace = grace
        self.penalty = penalty
        self._pipes: dict[int, _Pipe] = {}
        self._vouched: dict[str, frozenset[str]] = {}  # worker -> addresses
        self._trusted: frozenset[str] = frozenset()
        self._barred: dict[str, float] = {}  # host -> until when its unvouched connections go at once
        self.closed = 0  # connections closed unvouched (counted in statistics)
        self._turned_away = 0  # by admit(), on NNG's threads: under the lock
        self._arriving: set[str] = set()  # admitted unvouched, not yet seen by connections(): under the lock
        self._lock = threading.Lock()

    def connections(self, pipes: Mapping[int, str], now: float) -> None:
        """The task connections up now (pipe id -> remote address)."""
        self._pipes = {pid: self._pipes.get(pid) or _Pipe(address, now) for pid, address in pipes.items()}
        with self._lock:  # each arrival is here now, or already gone
            self._arriving.clear()

    def vouch(self, worker: str, addresses: Iterable[str]) -> None:
        self._vouched[worker] = frozenset(addresses)
        self._trusted = frozenset().union(*self._vouched.values())

    def forget(self, worker: str) -> None:
        if self._vouched.pop(worker, None) is not None:
            self._trusted = frozenset().union(*self._vouched.values())

    def admit(self, address: str) -> bool:
        """May a new connection from ``address`` carry batches? Called on NNG's thread before
        it can (so it only reads what the trio side replaces whole): False when its host is
        barred and nobody vouched for it."""
        if address in self._trusted:
            return True
        with self._lock:
            if _host(address) in self._barred:
                self._turned_away += 1
                return False
            self._arriving.add(address)  # held from now on: the trio side hears of it a little later
        return True

    @property
    def refused(self) -> int:
        """Connections closed unvouched: after their grace, or turned away at once."""
        with self._lock:
            return self.closed + self._turned_away

    @property
    def held(self) -> bool:
        """Some connection is unvouched: push might choose it, so no batch may go out."""
        with self._lock:
            if self._arriving - self._trusted:
                return True
        return any(pipe.address not in self._trusted for pipe in self._pipes.values())

    def due(self, now: float) -> tuple[list[int], float | None]:
        """Unvouched connections to close now (past their grace, or from a barred host;
        counted), and when to look again: a grace or a bar ends (None: none)."""
        self._barred = {host: until for host, until in self._barred.items() if until > now}
        close: list[int] = []
        wake: float | None = None
        for pid, pipe in self._pipes.items():
            if pipe.address in self._trusted:
                continue
            host = _host(pipe.address)
            if host in self._barred:
                close.append(pid)
            elif now - pipe.since >= self.grace:
                close.append(pid)
                self._barred[host] = now + self.penalty
            else:
                at = pipe.since + self.grace
                wake = at if wake is None else min(wake, at)
        for pid in close:
            del self._pipes[pid]
        self.closed += len(close)
        if self._barred:  # wake when a bar ends too, so admit() sees it end
            first = min(self._barred.values())
            wake = first if wake is None else min(wake, first)
        return close, wake


def parse_task_pipes(value: object) -> list[str]:
    """The ``tp`` field of a worker's hello: the local addresses of its task connections."""
    if not (type(value) is list and len(value) <= MAX_TASK_PIPES
            and all(type(a) is str and 0 < len(a) <= 300 for a in value)):  # fmt: skip
        raise ValueError(f"'tp' must list at most {MAX_TASK_PIPES} addresses")
    return value
