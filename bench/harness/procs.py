"""What the server processes cost, read from /proc: CPU time (user + system) of a process tree
and resident memory (current and peak) of each process."""

from __future__ import annotations

import os

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return data[data.rindex(")") + 2:].split()


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (not `pid` itself)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` so far (their finished children not included)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def thread_cpu_seconds(pids: list[int]) -> float:
    """CPU time so far of the threads of `pids` other than each process's main thread (a
    tracer's export thread, for one), in nanoseconds from /proc's schedstat: the 10-ms ticks of
    /proc's stat are coarser than such a thread's share of a short slice. Threads that ended are
    not counted."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            if int(tid) == pid:
                continue
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


# What counters() reads: user and system CPU milliseconds, minor and major page faults,
# voluntary and involuntary context switches.
COUNTERS = ("user_ms", "sys_ms", "minflt", "majflt", "vcsw", "ivcsw")


def counters(pids: list[int]) -> dict:
    """COUNTERS for `pids` (every thread of each) so far."""
    out = dict.fromkeys(COUNTERS, 0.0)
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        out["minflt"] += int(fields[7])
        out["majflt"] += int(fields[9])
        out["user_ms"] += int(fields[11]) * 1e3 / _TICK
        out["sys_ms"] += int(fields[12]) * 1e3 / _TICK
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            out["vcsw"] += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            out["ivcsw"] += int(line.split()[1])
            except OSError:
                pass
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in kB; (0, 0) when it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def machine() -> dict:
    """nproc, CPU model, memory and load average, for the report."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory_gib": mem_kb / 1024 / 1024,
            "loadavg": [float(x) for x in load], "kernel": os.uname().release}
