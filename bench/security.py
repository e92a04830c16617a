"""What a room secret costs, and what issue 13's hostile frames cost the host, in one run.

1. **Poll of 8 to result, with and without a secret**, over ipc and tcp: two rooms at
   once, hosted here, one with ``secret=``, each with 8 members in a spawned process of
   its own (``bench.poll``'s member job, async handlers); their polls alternate one by one
   (the order flips every poll), so drift on a busy machine hits both alike. Goal: the
   secret costs under 10% (median ratio < 1.10).
2. **Seal and open, per frame**: a 64-byte envelope sealed and opened by the room's guards
   (keyed BLAKE2b for the host's sockets, Ed25519 on the mesh). Hotlines take no
   ``secret=`` yet; until they do, twice this per ask is what a MAC-sealed line would add
   to a round trip (``bench.hotline_rtt`` has the round trip itself).
3. **Refusal time per hostile frame**, at a real room's own sockets (the code path every
   received frame takes, ``BaseSocket._unpack``, timed in this process): forged survey
   replies (plain, unknown key, a member's key id with a made-up tag, a replay), a forged
   hello, a forged mesh signature, and a *member's* properly signed hash-collision maps and
   amplification frame, and a stranger's 2 MiB frame under a made-up key (a MAC is checked
   over every byte) and 2 and 16 MiB frames under a member's signing key id with a made-up
   signature (refused by the signature, before the payload is hashed).
   Goal: each costly frame refused in under 10 ms (median; the max is shown too).
4. **Memory**: a member sends 8 of each costly frame (24) over a raw bus to the host's mesh;
   the host's RSS before and after, and its worst event-loop stall meanwhile. Goal: under
   50 MB of growth.

    python -m bench.security            # 4 rounds of 100 polls per room kind and transport
    python -m bench.security --quick    # 2 rounds of 40 polls
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cbor2
import pynng
import trio

import consensus
from consensus.trust.room import session_kid, sign_kid
from consensus.trust.seal import HEADER, MAGIC, TAG_SIZE, Scheme
from patterns import Envelope, MalformedMessage, encode

from . import _cli
from ._children import Child
from ._common import format_table
from ._poll_members import SETTLE_S, members, room_address
from ._schema import TOOLKIT, Metric, Skip

SECRET = b"bench.security: a room secret"
N = 8
TRANSPORTS = ("ipc", "tcp")
POLL_GOAL = 1.10  # a poll with a secret at most 10% slower
REFUSE_GOAL_MS = 10.0
MEMORY_GOAL_MB = 50.0
HASH_MODULUS = 2**61 - 1  # CPython: hash(k * (2**61 - 1)) == 0 for every int k
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# ===================================================================== hostile frames
def collision_frame(keys: int, sender: str) -> bytes:
    """A map of ``keys`` bignum keys that all hash to 0, written item by item (building the
    dict itself would take seconds: the very cost the decoder must refuse)."""
    head = b"\xa5" + b"".join(cbor2.dumps(x) for x in ("v", 1, "k", "say", "s", sender, "id", keys, "b"))
    items = b"".join(cbor2.dumps(k * HASH_MODULUS) + b"\x00" for k in range(1, keys + 1))
    return head + b"\xba" + keys.to_bytes(4, "big") + items


def amplification_frame(arrays: int, sender: str) -> bytes:
    """2 MiB of empty arrays: ``arrays`` list objects if decoded."""
    head = encode(Envelope("say", sender, arrays, body=[]))
    return head[:-1] + b"\x9a" + arrays.to_bytes(4, "big") + b"\x80" * arrays


def forge(scheme: Scheme, kid: bytes, data: bytes) -> bytes:
    """A frame that looks sealed under ``kid`` with a made-up tag. A made-up signature keeps
    its scalar under the group order (top bits clear), or the check refuses it before hashing."""
    tag = bytearray(secrets.token_bytes(TAG_SIZE[scheme]))
    if scheme is Scheme.SIG:
        tag[63] &= 0x0F
    return HEADER.pack(MAGIC, scheme, kid, 1 + secrets.randbits(40)) + bytes(tag) + data


# ===================================================================== 1. polls
async def paired_polls(workers: list[Child], transport: str, polls: int, warmup: int, tmpdir: str,
                       tag: str) -> dict[bool, list[float]]:  # fmt: skip
    """Two rooms at once, one with a secret, 8 members each (a worker process per room);
    their polls alternate one by one (which goes first flips every poll): drift hits both."""
    addresses = {
        s: room_address(transport, tmpdir, f"{tag}-{'secret' if s else 'plain'}") for s in (False, True)
    }
    samples: dict[bool, list[float]] = {False: [], True: []}
    missing = 0
    async with (
        consensus.host(addresses[False]) as plain,
        consensus.host(addresses[True], secret=SECRET) as sealed,
    ):
        rooms = {False: plain, True: sealed}
        try:
            for worker, s in zip(workers, (False, True)):
                worker.start(
                    members, addresses[s], [f"m{i}" for i in range(N)], "async", SECRET if s else None
                )
            for worker in workers:
                await worker.areceive("ready")
            for s, room in rooms.items():
                with trio.fail_after(60):
                    await room.wait_for_members(N)
            await trio.sleep(SETTLE_S)
            for i in range(warmup + polls):
                for s in (False, True) if i % 2 == 0 else (True, False):
                    start = time.perf_counter()
                    result = await rooms[s].poll(i, timeout=5.0)
                    elapsed = time.perf_counter() - start
                    missing += len(result.missing)
                    if i >= warmup:
                        samples[s].append(elapsed * 1e3)
        finally:
            for worker in workers:
                worker.send("stop")
            for worker in workers:
                await worker.areceive("done")
    if missing:
        print(f"warning: {transport}: {missing} answers missing", file=sys.stderr)
    return samples


def poll_rounds(rounds: int, polls: int, warmup: int) -> list[dict[str, Any]]:
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-security-")
    workers = [Child("security-plain", 0), Child("security-secret", 1)]
    samples: dict[tuple[str, bool], list[float]] = {(t, s): [] for t in TRANSPORTS for s in (False, True)}
    try:
        for r in range(rounds):
            for transport in TRANSPORTS:
                print(f"  round {r + 1}/{rounds} {transport} ...", file=sys.stderr, flush=True)
                got = trio.run(paired_polls, workers, transport, polls, warmup, tmpdir, f"room{r}")
                for s in (False, True):
                    samples[transport, s] += got[s]
    finally:
        for worker in workers:
            worker.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
    rows = []
    for transport in TRANSPORTS:
        plain, sealed = (statistics.median(samples[transport, s]) for s in (False, True))
        rows.append({"transport": transport, "n": N, "polls": len(samples[transport, False]),
                     "plain_median_ms": round(plain, 3), "secret_median_ms": round(sealed, 3),
                     "ratio": round(sealed / plain, 3), "met": sealed / plain < POLL_GOAL})  # fmt: skip
    return rows


# ===================================================================== 2, 3, 4: in a room here
def per_op_us(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count * 1e6


async def frame_costs(repeats: int) -> dict[str, Any]:
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-security-")
    address = f"ipc://{tmpdir}/room"
    big = [collision_frame(40_000, "mallory"), collision_frame(30_000, "mallory"),
           amplification_frame(2_000_000, "mallory")]  # fmt: skip
    try:
        # A long heartbeat: the timed loops below hold the event loop, and a member that
        # misses its heartbeats is expired (its keys go with it).
        async with consensus.host(address, secret=SECRET, heartbeat=5.0) as room, \
                consensus.join(address, name="mallory", secret=SECRET) as member:  # fmt: skip
            await room.wait_for_members(1)
            keys = member._protocol.keys
            assert keys is not None and room._protocol.keys is not None
            seal_open = _seal_open(keys, room)
            refusals = await _refusals(room, keys, repeats, big)
            memory = await _memory(room, keys, big)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {"seal_open": seal_open, "refusals": refusals, "memory": memory}


def _seal_open(keys: Any, room: consensus.Room) -> list[dict[str, Any]]:
    data = encode(Envelope("say", "mallory", 1, body=b"x" * 36))  # 64 bytes before the seal
    host = room._protocol.keys
    assert host is not None
    mac = keys.survey.sender
    mac_frames = iter([mac.seal(data) for _ in range(4000)])
    sig_frames = iter([keys.mesh.seal(data, "say") for _ in range(1000)])
    return [
        {"what": f"MAC seal, {len(data)} B (host sockets)", "us": round(per_op_us(lambda: mac.seal(data), 4000), 2)},
        {"what": "MAC open (check + replay window)",
         "us": round(per_op_us(lambda: host.survey.open(next(mac_frames)), 4000), 2)},
        {"what": f"Ed25519 seal, {len(data)} B (mesh)", "us": round(per_op_us(lambda: keys.mesh.seal(data, "say"), 1000), 2)},
        {"what": "Ed25519 open (verify + replay window)",
         "us": round(per_op_us(lambda: host.mesh.open(next(sig_frames)), 1000), 2)},
    ]  # fmt: skip


async def _refusals(room: consensus.Room, keys: Any, repeats: int, big: list[bytes]) -> list[dict[str, Any]]:
    answer = encode(Envelope("answer", "mallory", 1, body={"answer": "x"}, re=1))
    replayed = keys.survey.sender.seal(answer)
    room._surveyor._unpack(replayed)  # accepted once: every later copy is a replay
    say = encode(Envelope("say", "mallory", 2, body="x"))
    huge = big[2] * 8 + bytes(room._mesh.max_message_size - 8 * len(big[2]) - 200)  # just under the limit
    cases: list[tuple[str, Any, Callable[[], bytes], int]] = [
        ("survey: plain reply", room._surveyor, lambda: answer, repeats),
        ("survey: unknown key id", room._surveyor, lambda: forge(Scheme.MAC, secrets.token_bytes(8), answer), repeats),
        ("survey: a member's key id, made-up tag", room._surveyor,
         lambda: forge(Scheme.MAC, session_kid(keys.public.kx, b"survey"), answer), repeats),
        ("survey: a member's reply replayed", room._surveyor, lambda: replayed, repeats),
        ("control: hello under a made-up key", room._control,
         lambda: forge(Scheme.MAC, secrets.token_bytes(8), answer), repeats),
        ("mesh: a member's key id, made-up signature", room._mesh,
         lambda: forge(Scheme.SIG, sign_kid(keys.public.sign), say), repeats),
        # A stranger's big frames: the key ids are public, so the tag is checked, over every byte.
        ("control: 2 MiB under a made-up key", room._control,
         lambda: forge(Scheme.MAC, secrets.token_bytes(8), big[2]), 8),
        ("mesh: 2 MiB, a member's key id, made-up signature", room._mesh,
         lambda: forge(Scheme.SIG, sign_kid(keys.public.sign), big[2]), 8),
        ("mesh: 16 MiB (the default size limit), a member's key id, made-up signature", room._mesh,
         lambda: forge(Scheme.SIG, sign_kid(keys.public.sign), huge), 4),
        ("mesh, from a member: hash-collision map, 40,000 keys (0.5 MB)", room._mesh,
         lambda: keys.mesh.seal(big[0], "say"), 8),
        ("mesh, from a member: hash-collision map, 30,000 keys (0.4 MB)", room._mesh,
         lambda: keys.mesh.seal(big[1], "say"), 8),
        ("mesh, from a member: 2,000,000 empty arrays (2 MiB)", room._mesh,
         lambda: keys.mesh.seal(big[2], "say"), 8),
    ]  # fmt: skip
    rows = []
    for what, sock, make, count in cases:
        times, reasons = [], set()
        for _ in range(count):
            data = make()
            start = time.perf_counter()
            try:
                sock._unpack(data)
            except MalformedMessage as exc:
                times.append(time.perf_counter() - start)
                reasons.add(exc.reason)
            else:
                raise RuntimeError(f"{what}: the frame was accepted")
            await trio.lowlevel.checkpoint()  # the room's own tasks run between frames
        costly = "MiB" in what or what.startswith("mesh, from a member")
        rows.append({"what": what, "reason": ",".join(sorted(reasons)), "count": count,
                     "median_ms": round(statistics.median(times) * 1e3, 4), "max_ms": round(max(times) * 1e3, 4),
                     **({"met": statistics.median(times) * 1e3 < REFUSE_GOAL_MS} if costly else {})})  # fmt: skip
    return rows


async def _memory(room: consensus.Room, keys: Any, frames: list[bytes]) -> dict[str, Any]:
    mesh = room._mesh

    def refused() -> int:
        return mesh.statistics().malformed + mesh.statistics().unauthenticated

    refused0, reasons0 = refused(), dict(mesh.statistics().malformed_reasons)
    worst = 0.0
    done = trio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            start = trio.current_time()
            await trio.sleep(0.005)
            worst = max(worst, trio.current_time() - start - 0.005)

    before = rss()
    with pynng.Bus0(dial=room.endpoints.mesh, block_on_dial=True) as bus:
        while not bus.pipes:
            await trio.sleep(0.01)
        await trio.sleep(0.2)  # the host's side of the pipe registers a little later
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            for _ in range(8):
                for data in frames:
                    await bus.asend(keys.mesh.seal(data, "say"))
                    await trio.sleep(0.03)  # bus0 drops past a queue of 16
            with trio.move_on_after(30):
                while refused() - refused0 < 24:
                    await trio.sleep(0.01)
            done.set()
    grown = (rss() - before) / 1e6
    reasons = {
        k: v - reasons0.get(k, 0) for k, v in mesh.statistics().malformed_reasons if v > reasons0.get(k, 0)
    }
    return {"frames": 24, "refused": refused() - refused0, "reasons": reasons, "rss_growth_mb": round(grown, 1),
            "worst_loop_stall_ms": round(worst * 1e3, 1), "met": grown < MEMORY_GOAL_MB}  # fmt: skip


# ===================================================================== report
def render(report: dict[str, Any]) -> str:
    polls = format_table(
        ("poll of 8 to result", "polls each", "no secret median ms", "secret median ms", "ratio", "goal < 1.10"),
        [(r["transport"], r["polls"], f"{r['plain_median_ms']:.2f}", f"{r['secret_median_ms']:.2f}",
          f"{r['ratio']:.2f}",
          "met" if r["met"] else "NOT met") for r in report["polls"]],
    )  # fmt: skip
    costs = report["frames"]
    seal = format_table(("per frame", "µs"), [(r["what"], f"{r['us']:.1f}") for r in costs["seal_open"]])
    refusals = format_table(
        ("hostile frame", "refused as", "frames", "median ms", "max ms", f"goal: median < {REFUSE_GOAL_MS:g} ms"),
        [(r["what"], r["reason"], r["count"], f"{r['median_ms']:.3f}", f"{r['max_ms']:.3f}",
          "-" if "met" not in r else "met" if r["met"] else "NOT met") for r in costs["refusals"]],
    )  # fmt: skip
    m = costs["memory"]
    memory = (f"memory: {m['frames']} costly frames from a member over a raw bus: {m['refused']} refused "
              f"{m['reasons']}, "
              f"host RSS grew {m['rss_growth_mb']} MB (goal < {MEMORY_GOAL_MB:g}: {'met' if m['met'] else 'NOT met'}), "
              f"worst event-loop stall {m['worst_loop_stall_ms']} ms")  # fmt: skip
    hotline = ("hotline round trip with a secret: measured beside the plain one in the rtt scenario "
               "(variant 'secret hotline ask'; python -m bench.hotline_rtt, or the suite's rtt step)")  # fmt: skip
    return f"{polls}\n\n{seal}\n\n{hotline}\n\n{refusals}\n\n{memory}"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    polls = poll_rounds(args.rounds, args.polls, args.warmup)
    frames = trio.run(frame_costs, args.repeats)
    goals = {f"poll_{r['transport']}": {"ratio": r["ratio"], "op": "<", "target": POLL_GOAL, "met": r["met"]}
             for r in polls}  # fmt: skip
    for r in frames["refusals"]:
        if "met" in r:
            goals[f"refuse: {r['what']}"] = {"median_ms": r["median_ms"], "op": "<", "target": REFUSE_GOAL_MS,
                                             "met": r["met"]}  # fmt: skip
    goals["memory"] = {"rss_growth_mb": frames["memory"]["rss_growth_mb"], "op": "<", "target": MEMORY_GOAL_MB,
                       "met": frames["memory"]["met"]}  # fmt: skip
    params = {"n": N, "rounds": args.rounds, "polls": args.polls, "warmup": args.warmup, "repeats": args.repeats,
              "members": "8 per room in a spawned process of its own, async handlers; both hosts here",
              "order": "both rooms up at once; polls alternate, the first flips every poll"}  # fmt: skip
    return {"params": params, "polls": polls, "frames": frames, "goals": goals}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser("security", "The cost of a room secret, and of the hostile frames of issue 13.",
                    "2 rounds of 40 polls")  # fmt: skip
    p.add_argument("--rounds", type=int, default=None, help="rounds per room kind and transport (default 4)")
    p.add_argument("--polls", type=int, default=None, help="timed polls per round (default 100, --quick 40)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=200, help="frames per cheap refusal case (default 200)")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.polls = args.polls or (40 if args.quick else 100)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    title = "security: what a room secret costs, and what hostile frames cost the host"
    return _cli.run(args, "security", title, lambda machine: measure(args), render)


# ===================================================================== the suite's step
def suite_step(quick: bool) -> list[Metric | Skip]:
    """The suite's ``security`` step: the poll ratios, the seal costs and the refusal times as Metric rows."""
    report = measure(parse_args(["--quick"] if quick else []))
    out: list[Metric | Skip] = []
    for r in report["polls"]:
        for variant, key in (
            ("room.poll, no secret", "plain_median_ms"),
            ("room.poll, secret", "secret_median_ms"),
        ):
            out.append(
                Metric("security", TOOLKIT, variant, r["transport"], 0, N, "gather_median_ms", r[key], "ms")
            )
    for r in report["frames"]["seal_open"]:
        out.append(Metric("security", TOOLKIT, r["what"], "inproc", 64, 1, "per_frame_us", r["us"], "us"))
    for r in report["frames"]["refusals"]:
        for name, key in (("refuse_median_ms", "median_ms"), ("refuse_max_ms", "max_ms")):
            out.append(Metric("security", TOOLKIT, f"refuse {r['what']}", "ipc", 0, 1, name, r[key], "ms"))
    m = report["frames"]["memory"]
    out.append(Metric("security", TOOLKIT, "24 costly frames from a member", "ipc", 0, 1, "rss_growth_mb",
                      m["rss_growth_mb"], "MB"))  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
