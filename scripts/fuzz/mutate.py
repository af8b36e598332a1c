"""Structure-aware mutations of anvil models (issue 17), deterministic by seed.

A mutant is a seed model (parsed YAML) with one to three edits that a hostile
or careless user could make: a dimension or attribute set to an extreme
(0, -1, 2^31, 2^63 - 1, ...) or nudged by one, a float attribute made NaN,
infinite, negative or tiny, a dtype changed, an operand dropped, repeated or
swapped, an op replaced by another of the same arity, a key removed; or a
sharing a real model may well have: two readers of one weight, a node's twin
beside it.
"""
import copy
import random

EXTREME_INTS = [0, -1, -2, 1, 2, 3, 7, 8, 9, 2**31 - 1, 2**31, 2**32, 2**32 + 1, 3037000500,
                2**62, 2**63 - 1, -(2**63), 4611686018427387904, 1000003]
EXTREME_FLOATS = [float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 1e-50, 1e-45, 1e300, 7e4, -0.0, 1e-5]
DTYPES = ["f32", "f16", "bf16", "i32", "f64", "int8"]
UNARY = ["relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "silu", "gelu", "erf"]
BINARY = ["add", "sub", "mul", "div", "max", "min", "pow"]
INT_ATTRS = ["axis", "start", "end", "step", "groups", "stride", "padding", "dilation", "kernel"]
LIST_ATTRS = ["shape", "perm", "axes", "stride", "padding", "dilation", "kernel"]
FLOAT_ATTRS = ["eps", "value"]


def _tensors(m):
    return [t for key in ("inputs", "params") for t in (m.get(key) or []) if isinstance(t, dict)]


def _nodes(m):
    return [n for n in (m.get("nodes") or []) if isinstance(n, dict)]


def _pick(rng, items):
    """One of items at random, or None when there is none (the mutation does not apply)."""
    return rng.choice(items) if items else None


def _int(rng, old=None):
    if old is not None and isinstance(old, int) and rng.random() < 0.4:
        return max(1, old + rng.choice([-1, 1, 2]))  # nudged: small valid variants find wrong answers
    return rng.choice(EXTREME_INTS)


def mutate_shape(rng, m):
    t = _pick(rng, [t for t in _tensors(m) if isinstance(t.get("shape"), list)])
    if t is None:
        return False
    s = t["shape"]
    r = rng.random()
    if s and r < 0.6:
        i = rng.randrange(len(s))
        s[i] = _int(rng, s[i])
    elif r < 0.75:
        s.insert(rng.randrange(len(s) + 1), rng.choice([1, 2, 2**31]))
    elif s and r < 0.9:
        s.pop(rng.randrange(len(s)))
    else:
        t["shape"] = rng.choice([[], [0], None, "x", [1] * 7, [2**31 - 1, 2**31 - 1]])
    return True


def mutate_attr(rng, m):
    n = _pick(rng, _nodes(m))
    if n is None:
        return False
    r = rng.random()
    if r < 0.45:
        key = rng.choice(INT_ATTRS)
        n[key] = _int(rng, n.get(key) if isinstance(n.get(key), int) else None)
    elif r < 0.65:
        key = rng.choice(LIST_ATTRS)
        old = n.get(key)
        if isinstance(old, list) and old:
            old = list(old)
            i = rng.randrange(len(old))
            old[i] = _int(rng, old[i] if isinstance(old[i], int) else None)
            n[key] = old
        else:
            n[key] = [_int(rng) for _ in range(rng.choice([1, 2, 4]))]
    elif r < 0.85:
        n[rng.choice(FLOAT_ATTRS)] = rng.choice(EXTREME_FLOATS)
    else:
        keys = [k for k in n if k not in ("name",)]
        if keys:
            del n[rng.choice(keys)]
    return True


def mutate_operands(rng, m):
    n = _pick(rng, [n for n in _nodes(m) if isinstance(n.get("inputs"), list)])
    if n is None:
        return False
    ins = n["inputs"]
    names = [t.get("name") for t in _tensors(m)] + [x.get("name") for x in _nodes(m)]
    r = rng.random()
    if ins and r < 0.3:
        ins.pop(rng.randrange(len(ins)))
    elif r < 0.6:
        ins.append(rng.choice(names) if names else "x")
    elif ins:
        ins[rng.randrange(len(ins))] = rng.choice(names + ["nope", n.get("name")])
    return True


def mutate_sharing(rng, m):
    """Structure a model may well have, which the graph passes must keep
    apart: an operand rewired to another declared tensor of its shape (two
    readers of one weight), or a node repeated under a new name and made an
    output (siblings that read the same operands)."""
    declared = {t.get("name"): t.get("shape") for t in _tensors(m) if isinstance(t.get("shape"), list)}
    if rng.random() < 0.6:
        spots = [(n, i, other) for n in _nodes(m) if isinstance(n.get("inputs"), list)
                 for i, name in enumerate(n["inputs"]) if name in declared
                 for other in declared if other != name and declared[other] == declared[name]]
        spot = _pick(rng, spots)
        if spot is None:
            return False
        n, i, other = spot
        n["inputs"][i] = other
        return True
    n = _pick(rng, [n for n in _nodes(m) if isinstance(n.get("name"), str)])
    if n is None or not isinstance(m.get("outputs"), list):
        return False
    twin = copy.deepcopy(n)
    twin["name"] = n["name"] + "_twin"
    m["nodes"].append(twin)
    m["outputs"].append(twin["name"])
    return True


def mutate_op(rng, m):
    n = _pick(rng, _nodes(m))
    if n is None:
        return False
    op = n.get("op")
    if op in UNARY:
        n["op"] = rng.choice(UNARY)
    elif op in BINARY:
        n["op"] = rng.choice(BINARY)
    else:
        n["op"] = rng.choice(UNARY + BINARY + ["softmax", "layernorm", "rmsnorm", "matmul", "transpose", "reshape",
                                                "concat", "slice", "conv2d", "maxpool2d", "avgpool2d",
                                                "global_avgpool", "batchnorm", "embedding", "constant", "bogus"])
    return True


def mutate_dtype(rng, m):
    items = _tensors(m) + _nodes(m)
    if rng.random() < 0.3 or not items:
        m["dtype"] = rng.choice(DTYPES)
    else:
        rng.choice(items)["dtype"] = rng.choice(DTYPES)
    return True


def mutate_top(rng, m):
    r = rng.random()
    if r < 0.3 and m.get("outputs"):
        m["outputs"] = m["outputs"] + [rng.choice(m["outputs"])]
    elif r < 0.5:
        m["seed"] = _int(rng)
    elif r < 0.7:
        m["anvil"] = rng.choice([0, 2, "1", 1.0])
    elif r < 0.85 and _nodes(m):
        m["nodes"].append(copy.deepcopy(rng.choice(_nodes(m))))  # a duplicate name
    else:
        key = rng.choice(["inputs", "params", "nodes", "outputs", "name"])
        m.pop(key, None)
    return True


MUTATIONS = [(mutate_shape, 4), (mutate_attr, 5), (mutate_operands, 2), (mutate_sharing, 2), (mutate_op, 1),
             (mutate_dtype, 1), (mutate_top, 1)]


def mutate(model, seed):
    """A mutant of `model` (a parsed YAML mapping), the same for the same seed."""
    rng = random.Random(seed)
    m = copy.deepcopy(model)
    fns = [f for f, w in MUTATIONS for _ in range(w)]
    edits = rng.choice([1, 1, 1, 2, 3])
    done = 0
    for _ in range(20):
        if done == edits:
            break
        if rng.choice(fns)(rng, m):
            done += 1
    return m
