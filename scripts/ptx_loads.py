#!/usr/bin/env python3
"""Global and local loads per rTask kind in a PTX file, and the megakernel's
registers, stack and spills from a ptxas -v log: the static evidence of
scripts/bench_param_loads.sh.

  ptx_loads.py FILE.ptx [PTXAS.log]   ->  one line of 'kind: N ld.global, M ld.local' and the kernel's resources
"""
import collections
import re
import sys

KINDS = ('conv2d_tc_tile', 'conv2d_tile', 'matmul_tc_tile', 'matmul_tile', 'row_split_sum', 'row_tile', 'ew_tile',
         'window_tile', 'channel_tile', 'gather_tile', 'gemv_by_ring', 'gemv_by_columns', 'gemv_by_k')


def loads_by_kind(path):
    """{kind: [ld.global, ld.local]} summed over the kind's template instances."""
    out = collections.OrderedDict((k, [0, 0]) for k in KINDS)
    kind = None
    for line in open(path):
        m = re.match(r'(\.visible\s+|\.weak\s+)?\.(func|entry)\s+(\([^)]*\)\s*)?(\w+)', line)
        if m:
            kind = next((k for k in KINDS if 'anvil_' + k in m.group(4)), None)
            continue
        if kind is None:
            continue
        op = re.match(r'\s*(@!?%p\d+\s+)?(ld\.(global|local))', line)
        if op:
            out[kind][0 if op.group(3) == 'global' else 1] += 1
    return {k: v for k, v in out.items() if v != [0, 0]}


def kernel_resources(log):
    """(registers, stack bytes, spill stores) of anvil_megakernel in a ptxas -v log."""
    text = open(log).read()
    at = text.find("Function properties for anvil_megakernel")
    frame = re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores', text[at:])
    regs = re.search(r'Used (\d+) registers', text[at:])
    return int(regs.group(1)), int(frame.group(1)), int(frame.group(2))


if __name__ == '__main__':
    kinds = loads_by_kind(sys.argv[1])
    print('; '.join(f'{k}: {g} ld.global, {l} ld.local' for k, (g, l) in kinds.items()))
    if len(sys.argv) > 2:
        r, st, sp = kernel_resources(sys.argv[2])
        print(f'{r} registers, {st} B stack, {sp} B spill stores')
