"""``bench.shm``'s rows, ratios against the issue's goals, the threshold crossover, and the table."""

from __future__ import annotations

from typing import Any

from ._common import format_table, median, size_label

__all__ = ["MiB", "compute_ratios", "crossover", "render", "summarize_rows"]

MiB = 1024 * 1024
FLATNESS_TARGET = 2.0  # "nearly flat": the largest zero-copy delivery at most twice the 1 MiB one


def summarize_rows(phase: str, variant: Any, size: int, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the report: medians (and the spread) of one variant's deliveries at one size."""
    delivered = [s["delivered_ms"] for s in samples]
    read = [s["read_ms"] for s in samples]
    sent = [s["send_ms"] for s in samples]
    typical = median(delivered)
    copies = [s["copy_ms"] for s in samples if s.get("copy_ms") is not None]
    return {"phase": phase, "variant": variant.key, "label": variant.label, "description": variant.description,
            "size_bytes": size, "size": size_label(size), "n": len(samples), "delivered_ms": round(typical, 4),
            "delivered_min_ms": round(min(delivered), 4), "delivered_max_ms": round(max(delivered), 4),
            "read_ms": round(median(read), 4), "send_ms": round(median(sent), 4),
            "delivered_gb_per_s": round(size / (typical / 1e3) / 1e9, 2) if typical > 0 else None,
            "receiver_got": sorted({s["kind"] for s in samples}),
            "memcpy_ms": round(median(copies), 4) if copies else None,
            "samples_delivered_ms": [round(x, 4) for x in delivered]}  # fmt: skip


def _index(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["variant"], r["size_bytes"]): r for r in rows}


def _ratio(rows: dict[tuple[str, int], dict[str, Any]], num: tuple[str, int], den: tuple[str, int],
           goal: tuple[str, float] | None) -> dict[str, Any] | None:  # fmt: skip
    if num not in rows or den not in rows:
        return None
    a, b = rows[num], rows[den]
    entry: dict[str, Any] = {"numerator": f"{a['variant']} {a['size']}",
                             "denominator": f"{b['variant']} {b['size']}",
                             "value": round(a["delivered_ms"] / b["delivered_ms"], 3),
                             "value_read": round(a["read_ms"] / b["read_ms"], 3)}  # fmt: skip
    if goal is not None:
        op, target = goal
        entry.update(op=op, target=target)
        entry["met"] = entry["value"] >= target if op == ">=" else entry["value"] <= target
    return entry


def compute_ratios(rows: list[dict[str, Any]], *, quick: bool) -> dict[str, Any]:
    """Ratios of median delivery times (``value``; ``value_read`` on the delivered-and-read basis)."""
    index = _index(rows)
    ratios: dict[str, Any] = {"basis": "median delivered_ms (value) and read_ms (value_read)"}

    def add(name: str, num: tuple[str, int], den: tuple[str, int], goal: tuple[str, float] | None) -> None:
        entry = _ratio(index, num, den, goal)
        if entry is not None:
            ratios[name] = entry

    for size in (64 * MiB, 512 * MiB):
        label = size_label(size).replace(" ", "")
        goal = (">=", 20.0) if size == 64 * MiB else None
        add(f"ipc_inline_over_shm_{label}", ("ipc_inline", size), ("shm", size), goal)
        add(f"ipc_raw_over_shm_{label}", ("ipc_raw", size), ("shm", size), None)
        add(f"tcp_inline_over_tcp_shm_{label}", ("tcp_inline", size), ("tcp_shm", size), None)
        add(f"tcp_inline_over_shm_{label}", ("tcp_inline", size), ("shm", size), None)
        add(f"ipc_inline_over_zero_copy_{label}", ("ipc_inline", size), ("zero_copy", size), None)
        shm = index.get(("shm", size))
        if shm is not None and shm.get("memcpy_ms"):  # the floor of a copying send, and what it allows
            ratios[f"shm_over_memcpy_{label}"] = {
                "numerator": f"shm {shm['size']}", "denominator": "memcpy of the same payload (sender)",
                "value": round(shm["delivered_ms"] / shm["memcpy_ms"], 3)}  # fmt: skip
            if ("ipc_inline", size) in index:
                ratios[f"ipc_inline_over_memcpy_{label}"] = {
                    "numerator": f"ipc_inline {shm['size']}", "denominator": "memcpy of the same payload (sender)",
                    "value": round(index[("ipc_inline", size)]["delivered_ms"] / shm["memcpy_ms"], 3)}  # fmt: skip
    zero_copy = sorted(size for (key, size) in index if key == "zero_copy")
    if len(zero_copy) >= 2:
        big, small = zero_copy[-1], zero_copy[0]
        add("zero_copy_flatness", ("zero_copy", big), ("zero_copy", small), ("<=", FLATNESS_TARGET))
    for size in sorted({size for (key, size) in index if key.startswith("iox")}):
        label = size_label(size).replace(" ", "")
        add(f"zero_copy_over_iceoryx2_{label}", ("zero_copy", size), ("iox_loan", size), ("<=", 3.0))
        add(f"zero_copy_over_iceoryx2_poll_{label}", ("zero_copy", size), ("iox_loan_poll", size), None)
        add(f"shm_over_iceoryx2_copy_{label}", ("shm", size), ("iox_copy", size), ("<=", 3.0))
    return ratios


def crossover(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where shared memory starts to beat inline transfer in the sweep (ipc, median delivered):
    against the toolkit's inline path (``sweep_inline``) and against bare frames (``sweep_raw``)."""
    index = _index(rows)
    sizes = sorted(size for (key, size) in index if key == "sweep_shm")
    points = []
    for size in sizes:
        shm = index[("sweep_shm", size)]
        point: dict[str, Any] = {"size_bytes": size, "size": size_label(size), "shm_ms": shm["delivered_ms"]}
        for ref in ("inline", "raw"):
            other = index.get((f"sweep_{ref}", size))
            if other is not None:
                point[f"{ref}_ms"] = other["delivered_ms"]
                point[f"{ref}_over_shm"] = round(other["delivered_ms"] / shm["delivered_ms"], 3)
        points.append(point)
    result: dict[str, Any] = {"points": points}
    for ref in ("inline", "raw"):
        faster_from = None
        for point in reversed(points):  # the smallest size from which shared memory wins at every larger one
            if point.get(f"{ref}_over_shm", 0.0) <= 1.0:
                break
            faster_from = point["size_bytes"]
        result[f"shm_faster_than_{ref}_from_bytes"] = faster_from
        result[f"shm_faster_than_{ref}_from"] = None if faster_from is None else size_label(faster_from)
    return result


def _ms(value: float) -> str:
    if value < 10:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.2f}"
    return f"{value:.1f}"


def render(rows: list[dict[str, Any]], ratios: dict[str, Any], sweep: dict[str, Any],
           iceoryx2_skipped: str | None, cleanup: dict[str, Any], default_threshold: int) -> str:  # fmt: skip
    table = format_table(
        ("phase", "row", "variant", "size", "n", "delivered ms", "min..max ms", "+read ms", "send() ms",
         "GB/s", "receiver got"),
        [
            (r["phase"], r["label"], r["variant"], r["size"], r["n"], _ms(r["delivered_ms"]),
             f"{_ms(r['delivered_min_ms'])}..{_ms(r['delivered_max_ms'])}", _ms(r["read_ms"]),
             _ms(r["send_ms"]), f"{r['delivered_gb_per_s']:.2f}", ", ".join(r["receiver_got"]))
            for r in rows
        ],
        left=3,
    )  # fmt: skip
    lines = [table, "",
             "delivered: from just before send until the receiver holds the payload (memoryview or bytes);",
             "+read: until it has also read every byte once (numpy sum, the verified checksum).", "",
             "ratios of median delivered times (delivered-and-read basis in brackets):"]  # fmt: skip
    for name, entry in ratios.items():
        if not isinstance(entry, dict):
            continue
        text = f"  {name:<36} {entry['numerator']:>19} / {entry['denominator']:<19} = {entry['value']:8.2f}"
        if "value_read" in entry:
            text += f"  [{entry['value_read']:.2f}]"
        if "op" in entry:
            text += f"  goal {entry['op']} {entry['target']:g}: {'met' if entry['met'] else 'NOT met'}"
        lines.append(text)
    if sweep["points"]:
        lines += ["", f"threshold sweep over ipc (default threshold {size_label(default_threshold)}):"]
    for point in sweep["points"]:
        text = f"  {point['size']:>7}: shared memory {_ms(point['shm_ms'])} ms"
        for ref, name in (("inline", "inline"), ("raw", "bare frame")):
            if f"{ref}_ms" in point:
                text += f", {name} {_ms(point[f'{ref}_ms'])} ms (/shm {point[f'{ref}_over_shm']:.2f})"
        lines.append(text)
    for ref, name in (("inline", "the toolkit's inline path"), ("raw", "bare frames (no CBOR)")):
        if not any(f"{ref}_ms" in point for point in sweep["points"]):
            continue
        start = sweep[f"shm_faster_than_{ref}_from"]
        lines.append(
            f"  crossover vs {name}: shared memory is faster from {start} on"
            if start
            else f"  crossover vs {name}: shared memory was not faster at the largest sizes measured"
        )
    if iceoryx2_skipped:
        lines += ["", f"iceoryx2 rows skipped: {iceoryx2_skipped}"]
    left = cleanup["toolkit_segments_left"]
    lines.append("")
    lines.append(
        f"left behind: {len(left)} toolkit segments{' ' + str(left) if left else ''}; "
        f"{len(cleanup['iceoryx2_files_removed'])} iceoryx2 files removed from /dev/shm; "
        f"{cleanup['children_reaped']} child processes reaped"
    )
    return "\n".join(lines)
