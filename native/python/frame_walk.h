// A walk up the current thread's Python frames that creates no frame objects (frame_walk.c).
//
// Since CPython 3.11 the interpreter keeps its frames in plain structs and creates a
// PyFrameObject only when one is asked for: PyEval_GetFrame and PyFrame_GetBack allocate one per
// frame walked, freed again when the frame returns. The query-source lookup walks some twenty
// frames per query, so it reads the structs instead where it knows their layout
// (DJTRACE_FRAME_WALK), and callers keep the PyFrameObject walk for other versions.
#pragma once

#include <Python.h>

// Only 3.11: its frame structs are read through internal headers, whose layout is that of the
// interpreter the extension is built for. 3.12+ moved the frame pointer and changed the structs;
// they take the PyFrameObject path until they are supported here.
#if PY_VERSION_HEX >= 0x030B00F0 && PY_VERSION_HEX < 0x030C0000 && !defined(Py_LIMITED_API) && \
    !defined(PYPY_VERSION)
#define DJTRACE_FRAME_WALK 1
#else
#define DJTRACE_FRAME_WALK 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if DJTRACE_FRAME_WALK

// One interpreter frame, valid only during the visit that receives it.
typedef struct djtrace_frame djtrace_frame;

// Returns nonzero to stop the walk; the walk then returns that value. Must not raise.
typedef int (*djtrace_frame_visitor)(void* ctx, PyCodeObject* code, const djtrace_frame* frame);

// Visits the current thread's frames innermost first, the frames that PyEval_GetFrame and
// PyFrame_GetBack would give (frames still setting up their cells are skipped), at most
// max_depth of them. `code` is borrowed. Returns the first nonzero visit result, or 0. Needs
// the GIL; never raises, never allocates.
int djtrace_walk_frames(int max_depth, djtrace_frame_visitor visit, void* ctx);

// The byte offset of the instruction the frame is executing, as PyCode_Addr2Line takes it.
int djtrace_frame_addr(const djtrace_frame* frame);

// The line a tracer or debugger has set on the frame's frame object (PyFrameObject.f_lineno),
// which PyFrame_GetLineNumber returns in preference to the line table; 0 when unset.
int djtrace_frame_set_lineno(const djtrace_frame* frame);

// The frame's globals (borrowed), as PyFrame_GetGlobals gives them.
PyObject* djtrace_frame_globals(const djtrace_frame* frame);

// The frame's local variable `index` in its code's order (arguments first; borrowed), or null
// when unset or out of range.
PyObject* djtrace_frame_local(const djtrace_frame* frame, int index);

#endif  // DJTRACE_FRAME_WALK

#ifdef __cplusplus
}
#endif
