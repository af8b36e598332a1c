#!/usr/bin/env python3
"""Per-function static counts of a PTX file: instructions, local-memory
traffic, 64-bit divisions, global loads; and, from a ptxas -v log of the same
source, each function's stack frame and spills (ptxas gives registers for
the entry alone). The evidence of docs/perf/row-tiles-2026-11-28.md.

  ptx_func_stats.py FILE.ptx [PTXAS.log] [--match SUBSTR]   ->  a markdown table, a row per .func/.entry

Functions are named by their demangled-ish stem (anvil_row_tile<...> keeps
its mangled template arguments, shortened).
"""
import argparse
import collections
import re

FUNC = re.compile(r'^(\.visible\s+|\.weak\s+)?\.(func|entry)\s+(\([^)]*\)\s*)?(\w+)')
INSTR = re.compile(r'^\s*(@!?%p\d+\s+)?([a-z][\w.]*)')
DIV64 = re.compile(r'^(div|rem)\.(s|u)64$')


def count(path):
    """{name: Counter} over the PTX functions' bodies."""
    out = collections.OrderedDict()
    cur = None
    for line in open(path):
        m = FUNC.match(line)
        if m:
            cur = out.setdefault(m.group(4), collections.Counter())
            continue
        if cur is None:
            continue
        s = line.strip()
        if not s or s.startswith(('//', '.', '{', '}', '$', ')', '(')):
            continue
        op = INSTR.match(line)
        if not op:
            continue
        name = op.group(2)
        cur['instr'] += 1
        if name.startswith('ld.local'):
            cur['ld.local'] += 1
        elif name.startswith('st.local'):
            cur['st.local'] += 1
        elif name.startswith('ld.global'):
            cur['ld.global'] += 1
        if DIV64.match(name):
            cur['div64'] += 1
    return out


def frames(log):
    """{name: (stack bytes, spill stores, spill loads)}, and the entry's registers."""
    text = open(log).read()
    out = {}
    for m in re.finditer(r'Function properties for (\w+)\n\s+(\d+) bytes stack frame, (\d+) bytes spill stores, '
                         r'(\d+) bytes spill loads', text):
        out[m.group(1)] = tuple(int(x) for x in m.group(2, 3, 4))
    regs = re.search(r'Function properties for anvil_megakernel\n.*\n.*Used (\d+) registers', text)
    return out, (int(regs.group(1)) if regs else None)


def short(name):
    """anvil_row_tile<f32,f16,...> from the mangled name (template arguments: f, anvil_f16/bf16, ints)."""
    m = re.match(r'_Z\d+(anvil_\w+?)I(.*?)EEv', name) or re.match(r'_Z\d+(anvil_\w+?)I(.*?)Ev', name)
    if not m:
        return name
    args, rest = [], m.group(2)
    while rest:
        t = re.match(r'f|9anvil_f16|10anvil_bf16|Li(\d+)E?|Lb([01])E|S0_|S1_|S2_', rest)
        if not t:
            args.append(rest)
            break
        tok = t.group(0)
        args.append({'f': 'f32', '9anvil_f16': 'f16', '10anvil_bf16': 'bf16'}.get(tok, t.group(1) or t.group(2) or
                                                                               ('f16' if tok.startswith('S') else tok)))
        rest = rest[len(tok):]
    return f'{m.group(1)}<{",".join(args)}>'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('ptx')
    ap.add_argument('ptxas', nargs='?')
    ap.add_argument('--match', default='')
    a = ap.parse_args()
    fr, regs = frames(a.ptxas) if a.ptxas else ({}, None)
    print('| function | PTX instr | ld.local | st.local | div/rem 64 | ld.global | stack/spill st/spill ld (B) |')
    print('|---|---|---|---|---|---|---|')
    for name, c in count(a.ptx).items():
        if a.match not in name:
            continue
        f = fr.get(name)
        print(f'| {short(name)} | {c["instr"]} | {c["ld.local"]} | {c["st.local"]} | {c["div64"]} | {c["ld.global"]} | '
              f'{"/".join(map(str, f)) if f else "-"} |')
    if regs is not None:
        print(f'\nanvil_megakernel: {regs} registers')


if __name__ == '__main__':
    main()
