"""How a baseline is timed: the method of `anvil profile`.

The median (and min and max) of --iters timed runs after --warmup untimed
ones, in microseconds; the first call (compilation, graph capture,
autotuning) comes before both and is reported as setup_s.

torch: a torch.cuda.Event is recorded on the current stream before and after
each forward and the second is waited for, so a run is GPU time from the
first launch to the last kernel's end, including the gaps where the GPU
waits for the CPU to launch (what eager mode costs).

jax exposes no events: a run is timed on the wall clock around the call and
block_until_ready() on every output, so it also counts the Python dispatch
and the host's wake-up after the GPU is done: read it as an upper bound next
to torch's. The numpy baseline is timed on the wall clock too.
"""
import statistics
import time


def time_events(torch, call, warmup, iters):
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)  # ms -> us
    return times


def time_wall(call, warmup, iters):
    """`call` must block until its outputs are ready."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def summarize(times_us):
    return {"us": statistics.median(times_us), "min_us": min(times_us), "max_us": max(times_us)}
