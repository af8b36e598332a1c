// Phase marks inside a task's body, for the measured trace (ANVIL_TRACE):
// a GEMM's K loop marks when its first copies go out, when its first
// slice is in shared memory for every thread, and when the loop ends
// (AnvilTraceMark, params.cuh). A GEMV's ring walk (gemv.cuh) marks the
// same three: x's copies issued (a fixed B's first stages went out before
// the waits), its first ring stage in shared memory, the walk's end (the
// reduce and the stores follow). The GEMV's other walks, which the ring
// does not serve, leave none. The H200 trace of 2026-11-28 put about
// 10 us a tile outside the K loop's slices and could not say where
// (docs/perf/gemm-slices-2026-11-28.md); the marks split it into the
// prologue, the pipeline's fill and the epilogue.
//
// A mark is the block's: it waits at a barrier (traced builds only, like
// the one before the body's end), so a phase ends when its slowest warp
// does. Thread 0 alone writes and reads the marks, in a per-block slot of
// four 32-bit words: the body's start (low 32 bits of the clock), then each
// mark as nanoseconds since it (a body over 4.29 s would wrap; none runs
// that long but under a debugger). 16 bytes of static shared memory in a
// traced build (kMegakernelSmemExtra leaves room; tests/test_trace_marks.cpp
// compiles it). Untraced, a mark is nothing.
#ifndef ANVIL_RTASKS_TRACE_MARKS_CUH
#define ANVIL_RTASKS_TRACE_MARKS_CUH

#include "params.cuh"
#include "platform.cuh"

#ifdef ANVIL_TRACE
ANVIL_DEVICE unsigned* anvil_trace_marks() {
#if defined(__CUDACC__)
    __shared__ unsigned marks[1 + ANVIL_TRACE_MARKS];
    return marks;
#elif defined(ANVIL_SIMT)
    return (unsigned*)anvil_simt::shared("trace marks", 4 * (1 + ANVIL_TRACE_MARKS));
#else
    static thread_local unsigned marks[1 + ANVIL_TRACE_MARKS];  // a worker plays one block at a time
    return marks;
#endif
}

// Thread 0, as a body starts at `start_ns`: no marks yet.
ANVIL_DEVICE void anvil_trace_marks_open(unsigned long long start_ns) {
    unsigned* m = anvil_trace_marks();
    m[0] = (unsigned)start_ns;
    for (int i = 1; i <= ANVIL_TRACE_MARKS; ++i) m[i] = ANVIL_NO_MARK;
}

// Thread 0, as the body ends: the marks it left.
ANVIL_DEVICE void anvil_trace_marks_close(unsigned* mark_ns) {
    const unsigned* m = anvil_trace_marks();
    for (int i = 0; i < ANVIL_TRACE_MARKS; ++i) mark_ns[i] = m[1 + i];
}
#endif

// Mark `which` (AnvilTraceMark) once every thread is here; a tile calls it
// on every thread.
ANVIL_DEVICE void anvil_trace_mark(int which) {
#ifdef ANVIL_TRACE
    anvil_barrier();
    if (anvil_thread() == 0) {
        unsigned* m = anvil_trace_marks();
        m[1 + which] = (unsigned)anvil_now_ns() - m[0];
    }
#else
    (void)which;
#endif
}

#endif  // ANVIL_RTASKS_TRACE_MARKS_CUH
