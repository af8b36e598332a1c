#!/usr/bin/env python3
"""Per function of a PTX file whose name mentions `epilogue`: its PTX
instructions and its 64-bit integer divisions and remainders (what the
run-time epilogue interpreter spends per dimension per value).
Used by scripts/bench_specialise.sh."""
import re
import sys


def functions(path):
    name, count, div64 = None, 0, 0
    for line in open(path):
        if name is None:
            if line.startswith(('.func', '.visible .func', '.entry', '.visible .entry', '.weak .func')):
                m = re.search(r'(_Z\w+|anvil_\w+)\(', line)
                name, count, div64 = (m.group(1) if m else line[:60]), 0, 0
            continue
        stripped = line.strip()
        if stripped and stripped[0].isalpha() or stripped.startswith('@%p'):
            count += 1
        if re.search(r'\b(div|rem)\.(s|u)64\b', line):
            div64 += 1
        if line.startswith('}'):
            yield name, count, div64
            name = None


for name, count, div64 in functions(sys.argv[1]):
    if 'epilogue' in name:
        short = re.sub(r'^_Z\d+', '', name).split('RK')[0]
        print(f'{short}: {count} PTX instructions, {div64} 64-bit div/rem')
