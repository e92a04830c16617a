"""PAIR round-trip latency between two processes: raw pynng vs. the patterns layer.

One run measures a 64-byte round trip over ipc and over tcp (127.0.0.1) for ``a``
``pynng_sync`` (``pynng.Pair1`` blocking), ``b`` ``pynng_trio`` (``pynng.Pair1`` under
trio), ``c`` ``patterns_bytes`` (``patterns.Pair`` bare frames) and ``c2``
``patterns_cbor`` (``patterns.Pair`` with the CBOR envelope). The ratios ``c/a`` (goal
<= 1.5) and ``b/c`` (goal >= 2.0) compare medians. How it is measured (echo children,
interleaved blocks): :mod:`bench._rtt`. Other load matters, and not evenly: on a busy
machine blocked threads wake faster, which speeds up the sync client while the
CPU-bound trio variants slow down; the run records the machine's other CPU use.

    python -m bench.pair_rtt            # N=3000 per variant and transport
    python -m bench.pair_rtt --quick    # N=1000
    python -m bench.pair_rtt --n 10000 --json /tmp/rtt.json
"""

from __future__ import annotations

import sys
from typing import Any

from . import _cli, _rtt
from ._common import format_table, summarize_ns

TRANSPORTS = ("ipc", "tcp")
# name -> (numerator, denominator, goal as (op, target) or None)
RATIOS: dict[str, tuple[str, str, tuple[str, float] | None]] = {
    "c_over_a": ("patterns_bytes", "pynng_sync", ("<=", 1.5)),
    "b_over_c": ("pynng_trio", "patterns_bytes", (">=", 2.0)),
    "c2_over_a": ("patterns_cbor", "pynng_sync", None),
    "c2_over_c": ("patterns_cbor", "patterns_bytes", None),
    "b_over_a": ("pynng_trio", "pynng_sync", None),
    "c2_over_f": ("patterns_cbor", "pynng_floor", ("<=", 1.15)),  # issue 18: within 1.15x of the floor
}


def compute_ratios(results: list[dict[str, Any]], ratios: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"basis": "median_us (p99_us for *_p99)",
                           "goals": {k: {"op": g[0], "target": g[1]} for k, (_, _, g) in ratios.items() if g}}  # fmt: skip
    for transport in dict.fromkeys(r["transport"] for r in results):
        by = {r["variant"]: r for r in results if r["transport"] == transport}
        entry: dict[str, Any] = {}
        for name, (num, den, goal) in ratios.items():
            if num in by and den in by and by[den]["median_us"] > 0:
                entry[name] = value = round(by[num]["median_us"] / by[den]["median_us"], 3)
                entry[f"{name}_p99"] = round(by[num]["p99_us"] / by[den]["p99_us"], 3)
                if goal:
                    entry[f"{name}_met"] = {"<": value < goal[1], "<=": value <= goal[1], ">": value > goal[1],
                                            ">=": value >= goal[1]}[goal[0]]  # fmt: skip
        out[transport] = entry
    return out


def render(report: dict[str, Any]) -> str:
    rows = [(r["transport"], r["label"], r["variant"], _rtt.VARIANTS[r["variant"]][3],
             f"{r['median_us']:.1f}", f"{r['p99_us']:.1f}", f"{r['mean_us']:.1f}",
             r["n"]) for r in report["results"]]  # fmt: skip
    lines = [format_table(("transport", "", "variant", "client / echo style", "median µs",
                           "p99 µs", "mean µs", "n"), rows, left=4), "",
             "ratios of medians (p99 in brackets):"]  # fmt: skip
    goals = report["ratios"]["goals"]
    for transport in report["params"]["transports"]:
        entry = report["ratios"].get(transport, {})
        parts = []
        for name in [k for k in entry if k + "_p99" in entry]:
            text = f"{name.replace('_over_', '/')} = {entry[name]:.2f} [{entry[name + '_p99']:.2f}]"
            if name in goals:
                met = "met" if entry[f"{name}_met"] else "NOT met"
                text += f" (goal {goals[name]['op']} {goals[name]['target']}: {met})"
            parts.append(text)
        lines.append(f"  {transport}: " + ", ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None, name: str = "pair_rtt", ratios: dict[str, Any] = RATIOS,
         description: str = "64-byte PAIR round trip between two processes: pynng sync/async "
         "vs. patterns.Pair.") -> int:  # fmt: skip
    keys = list(dict.fromkeys(k for num, den, _ in ratios.values() for k in (den, num)))
    p = _cli.parser(name, description, "N=1000 (unless --n is given)")
    p.add_argument("--n", type=int, default=None, help="timed round trips per variant (default 3000)")
    p.add_argument("--warmup", type=int, default=200, help="untimed round trips first (default 200)")
    p.add_argument("--block", type=int, default=100,
                   help="timed round trips per variant before the next (default 100)")  # fmt: skip
    p.add_argument("--transport", dest="transports", action="append", choices=TRANSPORTS,
                   help="measure only this transport (repeatable; default: ipc and tcp)")  # fmt: skip
    p.add_argument("--variant", dest="variants", action="append", choices=keys,
                   help="measure only this variant (repeatable; default: all)")  # fmt: skip
    args = p.parse_args(argv)
    args.n = args.n or (1000 if args.quick else 3000)
    if args.n < 1 or args.block < 1 or args.warmup < 0:
        p.error("--n and --block must be at least 1, --warmup not negative")
    transports, keys = args.transports or list(TRANSPORTS), args.variants or keys
    size = len(_rtt.make_payload(64))

    def measure(machine: dict[str, Any]) -> dict[str, Any]:
        results = []
        for transport in transports:
            print(f"  {transport}: {', '.join(keys)} ...", file=sys.stderr, flush=True)
            samples = _rtt.run(transport, keys, [size], lambda _size: (args.warmup, args.n, args.block))
            assert not isinstance(samples, str)
            results += [{"transport": transport, "variant": key, "label": _rtt.VARIANTS[key][2],
                         **summarize_ns(samples[(key, size)])} for key in keys]  # fmt: skip
        params = {"n": args.n, "warmup": args.warmup, "block": args.block, "payload_bytes": size,
                  "transports": transports, "variants": {k: _rtt.VARIANTS[k][3] for k in keys},
                  "schedule": "per transport, all variants connected at once; timed blocks of `block` round trips "
                  "interleaved in rotating order, each after warmup/10 untimed ones",
                  "roles": "client listens on 127.0.0.1 or an ipc path; echo child (spawned, one per variant) dials",
                  "clock": "time.perf_counter_ns per round trip"}  # fmt: skip
        return {"params": params, "results": results, "ratios": compute_ratios(results, ratios)}

    title = f"{name}: {size}-byte round trip, two processes, n={args.n} per row"
    return _cli.run(args, name, title, measure, render)


if __name__ == "__main__":
    sys.exit(main())
