"""Any command as an agent: the requests a member or worker gets, handed to a shell command.

``Request`` says what is asked (a poll's question, a vote's motion and options, a hotline
ask, a task). :class:`ExecAgent` runs the command once per request, the request on its
stdin, and takes its stdout as the answer; :class:`ServeAgent` keeps one process alive and
speaks JSON lines with it (``{"id", "kind", ...}`` in, ``{"id", "answer"}`` or
``{"id", "error"}`` out). Both raise :class:`AgentFailed` when the command fails, so the
member or worker reports a ``Failure`` for that request and carries on.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from dataclasses import dataclass
from enum import Enum
from typing import Any, Self

import trio

from consensus.decide.ballot import Ballot

__all__ = ["AgentFailed", "ExecAgent", "Kind", "Request", "ServeAgent", "parse_answer"]

STDERR_TAIL = 300  # characters of a failed command's stderr quoted in its error


class Kind(Enum):
    POLL = "poll"
    VOTE = "vote"
    ASK = "ask"
    TASK = "task"


@dataclass(frozen=True, slots=True)
class Request:
    """One request for the command: ``value`` is the question, motion, ask or task."""

    kind: Kind
    value: Any
    options: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind.value, "value": self.value}
        if self.kind is Kind.VOTE:
            body["options"] = list(self.options)
        return body

    def as_text(self) -> str:
        """The plain-text form: the value itself if it is text, else its JSON."""
        return self.value if isinstance(self.value, str) else json.dumps(self.value)


class AgentFailed(Exception):
    """The command failed to answer a request (the member reports it as that request's error)."""


def parse_answer(request: Request, output: Any) -> Any:
    """The member's answer from the command's (decoded) output.

    For a vote: an option (matched by its text, so ``yes`` picks the option ``"yes"``),
    or a mapping ``{"choice", "confidence", "reason"}`` that becomes a :class:`Ballot`.
    """
    if request.kind is not Kind.VOTE:
        return output
    if isinstance(output, dict) and "choice" in output:
        extra = set(output) - {"choice", "confidence", "reason"}
        if extra:
            raise AgentFailed(f"vote answer has unknown fields {sorted(extra)}")
        choice = _option(request, output["choice"])
        try:
            return Ballot(choice, confidence=float(output.get("confidence", 1.0)), reason=output.get("reason"))
        except (TypeError, ValueError) as exc:
            raise AgentFailed(f"vote answer {output!r}: {exc}") from None
    return _option(request, output)


def _option(request: Request, choice: Any) -> Any:
    if choice is None or choice in request.options:
        return choice
    for option in request.options:  # "2" from a text answer picks the option 2
        if isinstance(choice, str) and (option if isinstance(option, str) else json.dumps(option)) == choice:
            return option
    shown = ", ".join(json.dumps(o) for o in request.options)
    raise AgentFailed(f"the command chose {choice!r}, which is not one of the options ({shown})")


def _kill_group(process: trio.Process) -> None:
    """The command runs in its own session: end the shell and whatever it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ExecAgent:
    """Run ``command`` (through the shell) for each request; ``json_io`` picks the stdin/stdout forms."""

    def __init__(self, command: str, *, json_io: bool = False, timeout: float | None = None) -> None:
        self.command = command
        self.json_io = json_io
        self.timeout = math.inf if timeout is None else timeout

    async def __call__(self, request: Request) -> Any:
        stdin = json.dumps(request.to_json()) if self.json_io else request.as_text()
        env = {**os.environ, "NNGC_KIND": request.kind.value}
        if request.kind is Kind.VOTE:
            env["NNGC_OPTIONS"] = json.dumps(list(request.options))

        async def kill(process: trio.Process) -> None:
            _kill_group(process)

        with trio.move_on_after(self.timeout) as scope:
            done = await trio.run_process(
                self.command, shell=True, stdin=(stdin + "\n").encode(), capture_stdout=True,
                capture_stderr=True, check=False, env=env, start_new_session=True, deliver_cancel=kill,
            )  # fmt: skip
        if scope.cancelled_caught:
            raise AgentFailed(f"the command did not answer within {self.timeout:g} s (killed)")
        if done.returncode != 0:
            raise AgentFailed(_exit_text(done.returncode, done.stderr.decode(errors="replace")))
        text = done.stdout.decode(errors="replace").strip()
        if not self.json_io:
            return parse_answer(request, text)
        try:
            output = json.loads(text)
        except ValueError:
            raise AgentFailed(f"the command's output is not JSON: {text[:200]!r}") from None
        return parse_answer(request, output)


def _exit_text(code: int, stderr: str) -> str:
    what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
    tail = stderr.strip().splitlines()[-1][:STDERR_TAIL] if stderr.strip() else ""
    return f"the command {what}" + (f": {tail}" if tail else "")


class ServeAgent:
    """One long-lived process speaking JSON lines: a request line in, an answer line out.

    Use as ``async with ServeAgent(cmd) as agent``; ``agent(request)`` sends one request
    and waits for the line with its id. If the process exits, pending and later requests
    fail, and :meth:`wait_exited` returns (the command line ends the member then).
    """

    def __init__(self, command: str, *, timeout: float | None = None) -> None:
        self.command = command
        self.timeout = math.inf if timeout is None else timeout
        self._ids = 0
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._write_lock = trio.Lock()
        self._exited = trio.Event()
        self.returncode: int | None = None
        self._process: trio.Process | None = None
        self._nursery_cm: Any = None

    async def __aenter__(self) -> Self:
        self._process = await trio.lowlevel.open_process(
            self.command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        nursery.start_soon(self._read_loop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None
        if self._process.stdin is not None:
            with trio.move_on_after(1):
                await self._process.stdin.aclose()  # end of input: a polite process exits
        with trio.move_on_after(2):
            await self._exited.wait()
        _kill_group(self._process)
        await self._process.wait()
        await self._nursery_cm.__aexit__(None, None, None)

    async def wait_exited(self) -> int | None:
        await self._exited.wait()
        return self.returncode

    async def _read_loop(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        buffer = b""
        async for chunk in self._process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._dispatch(line)
        self.returncode = await self._process.wait()
        self._exited.set()
        for channel in self._waiting.values():
            channel.close()

    def _dispatch(self, line: bytes) -> None:
        try:
            reply = json.loads(line)
            channel = self._waiting.pop(reply["id"])
        except (ValueError, KeyError, TypeError):
            return  # not an answer to a pending request (a log line, a late answer): ignored
        channel.send_nowait(reply)

    async def __call__(self, request: Request) -> Any:
        assert self._process is not None and self._process.stdin is not None
        if self._exited.is_set():
            raise AgentFailed(f"the --serve command has exited (status {self.returncode})")
        self._ids += 1
        ident = self._ids
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[ident] = send
        line = json.dumps({"id": ident, **request.to_json()}) + "\n"
        try:
            with trio.move_on_after(self.timeout) as scope:
                async with self._write_lock:
                    await self._process.stdin.send_all(line.encode())
                reply = await receive.receive()
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            raise AgentFailed(f"the --serve command has exited (status {self.returncode})") from None
        finally:
            self._waiting.pop(ident, None)
        if scope.cancelled_caught:
            raise AgentFailed(f"the --serve command did not answer request {ident} within {self.timeout:g} s")
        if "error" in reply:
            raise AgentFailed(str(reply["error"])[:2000])
        if "answer" not in reply:
            raise AgentFailed(f"the --serve command's reply to request {ident} has no 'answer' nor 'error'")
        return parse_answer(request, reply["answer"])
