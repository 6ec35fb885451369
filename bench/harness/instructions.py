"""Instructions per request of the endpoint mix, counted by valgrind's callgrind: figures that do
not move with the machine's load, unlike every timing in this session.

Each configuration runs in a process of its own under callgrind, on a freshly seeded database
(the create endpoint adds orders, which the list endpoints would then show to the next
configuration). The process warms up on the whole mix, then counts each endpoint in turn: the
request thread's instructions over `n` requests of that endpoint, garbage collected and frozen
before each count. The other threads (the tracer's export worker) are counted over the whole
process and divided by every request it served, warm-up included: their work is batched, and
does not belong to one endpoint.

They move with memory layout (CPython's method cache is indexed by addresses, by up to a few
percent on one page): every configuration runs with the same hash seed and environment size.

`run_gunicorn` counts the same mix where the HTTP benchmark serves it: inside one Gunicorn sync
worker (the benchmark's gunicorn_conf.py, one worker), the requests coming over a socket from
the load generator, so that whatever only a real server does per request (the WSGI environ,
the access-log hook, psycopg's persistent connection) is counted too.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

CONTROL = textwrap.dedent("""
    #include <valgrind/callgrind.h>
    void cg_zero(void) { CALLGRIND_ZERO_STATS; }
    void cg_dump(const char* s) { CALLGRIND_DUMP_STATS_AT(s); }
    void cg_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
""")

WORKLOAD = textwrap.dedent("""
    import ctypes, gc, json, sys
    lib = ctypes.CDLL(sys.argv[1])
    n, warm, mix_path = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    from harness import stacks
    from harness.inproc import mix_session
    requests, one = mix_session(mix_path)

    bad = 0
    for i in range(warm):
        for req in requests:
            bad += one(req, i).status_code >= 400
    stacks.flush()
    for req in requests:
        gc.collect()
        gc.freeze()
        lib.cg_zero()
        for i in range(n):
            bad += one(req, i).status_code >= 400
        lib.cg_dump(req["label"].encode())
        gc.unfreeze()
    stacks.flush()
    print(json.dumps({"requests": (warm + n) * len(requests), "errors": bad}))
""")


def available() -> str | None:
    """Why the workload cannot run here, or None."""
    if not shutil.which("valgrind"):
        return "valgrind is not installed (scripts/bench.sh installs it)"
    if not os.path.exists("/usr/include/valgrind/callgrind.h"):
        return "valgrind's callgrind.h is missing"
    return None


def control_library(directory: str) -> str:
    """Builds the library whose cg_zero(), cg_dump(label) and cg_toggle() (counting off, then
    on again) a process under callgrind calls (through ctypes) to count a stretch of its own
    work; returns its path."""
    src, lib = os.path.join(directory, "control.c"), os.path.join(directory, "libcontrol.so")
    with open(src, "w") as f:
        f.write(CONTROL)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", lib, src], check=True)
    return lib


def read_dump(path: str) -> tuple[str | None, dict[str, int]]:
    """A callgrind output file's dump label (what cg_dump was given; None for a thread's final
    counts) and every event it counted, as totals: "Ir" (instructions), and with
    --cache-sim=yes the simulated cache misses (I1mr, D1mr, D1mw, ILmr, DLmr, DLmw)."""
    with open(path) as f:
        text = f.read()
    label = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
    names = re.search(r"^events: (.*)$", text, re.M).group(1).split()
    values = re.search(r"^(?:summary|totals): (.*)$", text, re.M).group(1).split()
    return (label.group(1) if label else None), dict(zip(names, map(int, values), strict=False))


def run(configs, n: int, warm: int, prepare_mix, env_of, app_path: str, log) -> dict:
    """{config: {"endpoints": {label: instructions per request}, "other_threads": instructions
    per request, "requests": served}}. `prepare_mix()` seeds a fresh database and returns the
    mix's spec."""
    out: dict = {}
    tmp = tempfile.mkdtemp(prefix="djtrace-instructions-")
    try:
        lib = control_library(tmp)
        for config in configs:
            spec = prepare_mix()
            if "error" in spec:
                raise RuntimeError(f"instructions ({config}): seeding failed: {spec['error']}")
            mix_path = os.path.join(tmp, f"mix-{config}.json")
            with open(mix_path, "w") as f:
                json.dump(spec, f)
            labels = [r["label"] for r in spec["requests"]]
            base = os.path.join(tmp, f"cg-{config}.out")
            env = {**env_of(config), "PYTHONHASHSEED": "0"}
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", "--separate-threads=yes",
                 f"--callgrind-out-file={base}", sys.executable, "-c", WORKLOAD, lib, str(n),
                 str(warm), mix_path],
                env=env, cwd=app_path, capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise RuntimeError(f"instructions ({config}) failed:\n{proc.stderr[-3000:]}")
            summary = json.loads(proc.stdout.strip().splitlines()[-1])
            counted = {}
            # <base>.<dump>-01: the request thread's dumps, one per endpoint.
            for path in glob.glob(base + ".*-01"):
                label, events = read_dump(path)
                counted[label] = events["Ir"] / n
            endpoints = {label: counted[label] for label in labels if label in counted}
            # <base>-NN: each thread's counts since its last dump; threads other than the
            # request thread never dump, so theirs cover the whole process.
            others = sum(read_dump(p)[1]["Ir"] for p in glob.glob(base + "-*")
                         if not p.endswith("-01"))
            out[config] = {"endpoints": endpoints,
                           "other_threads": others / summary["requests"],
                           "requests": summary["requests"], "errors": summary["errors"]}
            log(f"instructions: {config} done")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# The benchmark's Gunicorn configuration, one worker, with a post_request hook that counts the
# requests of the mix (not the readiness probes) and has callgrind count BENCH_CG_N of them
# after BENCH_CG_WARM.
GUNICORN_CONF = textwrap.dedent("""
    import ctypes, gc, os
    _base = os.path.join(os.environ["BENCH_HARNESS"], "gunicorn_conf.py")
    exec(compile(open(_base).read(), _base, "exec"))
    workers = 1
    timeout = 3600
    _warm, _n = int(os.environ["BENCH_CG_WARM"]), int(os.environ["BENCH_CG_N"])
    _lib = ctypes.CDLL(os.environ["BENCH_CG_LIB"])
    _served = [0]

    def post_request(worker, req, environ, resp):
        if environ.get("QUERY_STRING") == "bench-probe":
            return
        _served[0] += 1
        if _served[0] == _warm:
            gc.collect()
            gc.freeze()
            _lib.cg_zero()
        elif _served[0] == _warm + _n:
            _lib.cg_dump(b"gunicorn")
""")


def run_gunicorn(configs, passes: int, warm_passes: int, prepare_mix, env_of, app_path: str,
                 log) -> dict:
    """{config: {"request_thread": instructions per request over `passes` passes over the mix
    (after `warm_passes`), "other_threads": the worker's other threads over its whole life, per
    request it served, "requests": served, "errors": failed}} for one Gunicorn sync worker
    under callgrind."""
    from harness import macro

    out: dict = {}
    tmp = tempfile.mkdtemp(prefix="djtrace-instructions-gunicorn-")
    try:
        lib = control_library(tmp)
        conf = os.path.join(tmp, "gunicorn_cg.py")
        with open(conf, "w") as f:
            f.write(GUNICORN_CONF)
        for config in configs:
            spec = prepare_mix()
            if "error" in spec:
                raise RuntimeError(f"gunicorn instructions ({config}): seeding failed: "
                                   f"{spec['error']}")
            mix_path = os.path.join(tmp, f"mix-{config}.json")
            with open(mix_path, "w") as f:
                json.dump(spec, f)
            # Whole passes over the mix, so that every endpoint counts equally.
            count = passes * len(spec["requests"])
            warm_up = warm_passes * len(spec["requests"])
            port = macro.free_port()
            base = os.path.join(tmp, f"cg-{config}.out")
            env = {**env_of(config), "PYTHONHASHSEED": "0", "BENCH_BIND": f"127.0.0.1:{port}",
                   "BENCH_WORKERS": "1", "BENCH_HARNESS": os.path.dirname(__file__),
                   "BENCH_CG_WARM": str(warm_up), "BENCH_CG_N": str(count),
                   "BENCH_CG_LIB": lib}
            log_path = os.path.join(tmp, f"gunicorn-{config}.log")
            with open(log_path, "w") as log_file:
                proc = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", "--separate-threads=yes",
                     f"--callgrind-out-file={base}.%p", sys.executable, "-m", "gunicorn", "-c",
                     conf, "harness.wsgi:application"],
                    env=env, cwd=app_path, stdout=log_file, stderr=subprocess.STDOUT)
                try:
                    _wait_ready(proc, port, log_path)
                    result = macro.load(port, mix_path, 1, 3600.0, 0.0, warm_up + count)
                finally:
                    proc.terminate()
                    try:
                        proc.wait(300)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(30)
            measured = glob.glob(f"{base}.*.1-01")
            if len(measured) != 1:
                raise RuntimeError(f"gunicorn instructions ({config}): no count was dumped "
                                   f"(served {result['all_requests']})")
            total = read_dump(measured[0])[1]["Ir"]
            worker = measured[0][len(base) + 1:].split(".")[0]
            others = sum(read_dump(path)[1]["Ir"] for path in glob.glob(f"{base}.{worker}-*")
                         if not path.endswith("-01"))
            served = result["all_requests"]
            out[config] = {"request_thread": total / count,
                           "other_threads": others / served if served else float("nan"),
                           "requests": served, "errors": result.get("errors", 0)}
            log(f"instructions (gunicorn): {config} done")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _wait_ready(proc: subprocess.Popen, port: int, log_path: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path) as f:
                raise RuntimeError(f"gunicorn under callgrind exited: {f.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/?bench-probe",
                                        timeout=60) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("gunicorn under callgrind did not answer in time")
