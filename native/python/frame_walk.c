// The frame walk of frame_walk.h. C, not C++: the interpreter's internal headers are C (later
// versions' do not compile as C++), and Py_BUILD_CORE stays out of the nanobind sources.
#include "python/frame_walk.h"

#if DJTRACE_FRAME_WALK

#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <internal/pycore_frame.h>

// The frame PyFrame_GetBack would return, without creating its frame object: the frame
// object's f_back when it has one (set only on frames that outlived their call), otherwise the
// previous complete frame.
static _PyInterpreterFrame* Back(_PyInterpreterFrame* frame) {
  PyFrameObject* obj = frame->frame_obj;
  if (obj && obj->f_back) return obj->f_back->f_frame;
  frame = frame->previous;
  while (frame && _PyFrame_IsIncomplete(frame)) frame = frame->previous;
  return frame;
}

int djtrace_walk_frames(int max_depth, djtrace_frame_visitor visit, void* ctx) {
  // Unchecked: no fatal error and no exception when there is no thread state.
  PyThreadState* tstate = _PyThreadState_UncheckedGet();
  if (!tstate || !tstate->cframe) return 0;
  // The innermost complete frame, as PyEval_GetFrame finds it.
  _PyInterpreterFrame* frame = tstate->cframe->current_frame;
  while (frame && _PyFrame_IsIncomplete(frame)) frame = frame->previous;
  for (int depth = 0; frame && depth < max_depth; ++depth, frame = Back(frame)) {
    int result = visit(ctx, frame->f_code, (const djtrace_frame*)frame);
    if (result) return result;
  }
  return 0;
}

int djtrace_frame_addr(const djtrace_frame* frame) {
  _PyInterpreterFrame* f = (_PyInterpreterFrame*)frame;
  return _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
}

int djtrace_frame_set_lineno(const djtrace_frame* frame) {
  PyFrameObject* obj = ((const _PyInterpreterFrame*)frame)->frame_obj;
  return obj ? obj->f_lineno : 0;
}

PyObject* djtrace_frame_globals(const djtrace_frame* frame) {
  return ((const _PyInterpreterFrame*)frame)->f_globals;
}

PyObject* djtrace_frame_local(const djtrace_frame* frame, int index) {
  const _PyInterpreterFrame* f = (const _PyInterpreterFrame*)frame;
  if (index < 0 || index >= f->f_code->co_nlocals) return NULL;
  return f->localsplus[index];
}

#else

// Nothing to build for this interpreter (an empty translation unit is not ISO C).
typedef int djtrace_frame_walk_unused;

#endif  // DJTRACE_FRAME_WALK
