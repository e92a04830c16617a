"""``python -m bench.calls --mode cpu`` / ``--mode syscalls``: the meter and the strace counts."""

from __future__ import annotations

from pathlib import Path

from bench._calls_cpu import MARK, CpuMeter, count_syscalls, render_cpu


def test_the_meter_reports_this_threads_cpu_per_message() -> None:
    meter = CpuMeter("near")
    meter.on()
    sum(i * i for i in range(200_000))  # some CPU, no sleep
    meter.off()
    report = meter.report(10)
    assert report["cpu_us"] > 0 and report["wall_us"] >= report["cpu_us"] * 0.5
    assert set(report) == {"cpu_us", "user_us", "sys_us", "wall_us", "sleeps", "preempted"}


def test_system_calls_are_counted_between_each_sides_marks(tmp_path: Path) -> None:
    on, off = MARK.format(side="far", what="on"), MARK.format(side="far", what="off")
    (tmp_path / "t.101").write_text("\n".join([
        "epoll_wait(3, [], 2, 0) = 0",  # before the window: not counted
        f'newfstatat(AT_FDCWD, "{on}", 0x7ff, 0) = -1 ENOENT (No such file or directory)',
        *["epoll_wait(3, [{events=EPOLLIN}], 2, -1) = 1", "sendmsg(7, {msg_iov=[]}, 0) = 124",
          "poll([{fd=9, events=POLLIN}], 1, 0) = 0 (Timeout)"] * 4,
        f'newfstatat(AT_FDCWD, "{off}", 0x7ff, 0) = -1 ENOENT (No such file or directory)',
        "futex(0x1, FUTEX_WAKE, 1) = 0", "+++ exited with 0 +++",
    ]))  # fmt: skip
    (tmp_path / "t.102").write_text("futex(0x1, FUTEX_WAIT, 0) = 0\n")  # an NNG thread: no marks
    counts = count_syscalls(str(tmp_path / "t"), 4)
    assert counts == {"far": {"total": 3.0, "epoll_wait": 1.0, "sendmsg": 1.0, "poll": 1.0}}
    result = {"scenario": "hotline", "transport": "ipc", "n": 4, "syscalls": counts,
              "near": {"cpu_us": 1, "user_us": 1, "sys_us": 0, "wall_us": 2, "sleeps": 1, "preempted": 0},
              "far": {"cpu_us": 1, "user_us": 1, "sys_us": 0, "wall_us": 2, "sleeps": 1, "preempted": 0}}  # fmt: skip
    assert "system calls: total 3.0, epoll_wait 1.0" in render_cpu(result)
