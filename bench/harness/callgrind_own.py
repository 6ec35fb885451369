"""djtrace's own instructions in a callgrind output file: what its native code executes, with
the CPython C API it calls, but not the Python code its hooks wrap (the view a middleware span
surrounds, the query a database span times).

A hook is a native function that Python calls; it does some work and calls back into Python
through CPython's call functions (PyObject_Vectorcall and kin). Its own cost is its functions'
self cost plus everything they call, except those calls back. Callgrind records, per call
edge, the inclusive cost of the callee: a callee reached from several callers is charged to
each in proportion to the cost of its edge (exact for the functions djtrace's hooks share only
when each call costs the same, which is close enough for totals).

Functions count as djtrace's when their object file is the `_native` module (a stripped build
works: its functions show as addresses). Unknown stubs (PLT entries, valgrind's redirections)
are followed as if they were djtrace's.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

# CPython's functions that call a Python callable: the edge back into the wrapped code.
_CALL_BACK = re.compile(
    r"^(PyObject_Vectorcall|_PyObject_VectorcallTstate|PyObject_VectorcallMethod|PyObject_Call"
    r"|_PyObject_Call|PyObject_CallOneArg|PyObject_CallNoArgs|PyObject_CallFunctionObjArgs"
    r"|PyObject_CallMethodObjArgs|_PyObject_MakeTpCall|_PyFunction_Vectorcall|_PyEval_Vector"
    r"|method_vectorcall|cfunction_vectorcall)")


class CallGraph:
    """Self costs and call edges (instructions) of one callgrind output file."""

    def __init__(self, path: str) -> None:
        self.self_cost: Counter[str] = Counter()
        self.calls: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.object_of: dict[str, str] = {}
        names: dict[tuple[str, str], str] = {}

        def name(kind: str, text: str) -> str:
            # Compressed names: "(12) full name" the first time, "(12)" afterwards.
            m = re.match(r"\((\d+)\)(?: (.*))?$", text)
            if not m:
                return text
            if m.group(2) is not None:
                names[(kind, m.group(1))] = m.group(2)
            return names.get((kind, m.group(1)), text)

        fn = obj = callee = callee_obj = ""
        after_calls = False
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                head = line[:4]
                if head.startswith("ob="):
                    obj = name("ob", line[3:])
                elif head.startswith("fn="):
                    fn = name("fn", line[3:])
                    self.object_of[fn] = obj
                elif head == "cob=":
                    callee_obj = name("ob", line[4:])
                elif head == "cfn=":
                    callee = name("fn", line[4:])
                    if callee_obj:
                        self.object_of.setdefault(callee, callee_obj)
                    callee_obj = ""
                elif line.startswith("calls="):
                    after_calls = True
                elif line[0] in "0123456789+-*":
                    parts = line.split()
                    if len(parts) < 2:
                        continue
                    cost = int(parts[1])
                    if after_calls:
                        self.calls[fn][callee] += cost
                        after_calls = False
                    else:
                        self.self_cost[fn] += cost

    def is_djtrace(self, fn: str) -> bool:
        return "_native" in self.object_of.get(fn, "")

    def own(self) -> dict[str, float]:
        """Own instructions per entry point (a djtrace function called from outside it)."""
        memo: dict[str, float] = {}

        def inclusive(fn: str) -> int:
            return self.self_cost[fn] + sum(self.calls[fn].values())

        def own_of(fn: str) -> float:
            if fn in memo:
                return memo[fn]
            memo[fn] = 0.0  # a cycle adds nothing more
            total = float(self.self_cost[fn])
            for callee, cost in self.calls[fn].items():
                if self.is_djtrace(callee) or callee.startswith("0x"):
                    whole = inclusive(callee)
                    total += own_of(callee) * cost / whole if whole else 0.0
                elif not _CALL_BACK.match(callee.split("'")[0]):
                    total += cost  # the C API, libc, the allocator
            memo[fn] = total
            return total

        callers: defaultdict[str, set[str]] = defaultdict(set)
        for fn, callees in self.calls.items():
            for callee in callees:
                callers[callee].add(fn)
        def inside(fn: str) -> bool:
            return self.is_djtrace(fn) or fn.startswith("0x")

        return {fn: own_of(fn) for fn in self.object_of
                if self.is_djtrace(fn) and any(not inside(c) for c in callers[fn])}


def own_instructions(path: str) -> float:
    """djtrace's own instructions in the callgrind output file `path`, in all."""
    return sum(CallGraph(path).own().values())
