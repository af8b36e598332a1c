#!/usr/bin/python3
"""Generates models/llama_decode.yaml and models/llama_decode_small.yaml: one
decode step of a Llama-style model (one new token against a KV cache), bf16.

Attention of the new token covers the cache and the token itself without
copying the cache: scores against the cache and against the new key are
concatenated (a few KiB), softmaxed together, and the probabilities split
again to weight the cached values and the new value. Grouped-query attention
is a batched matmul: q [1, heads*hd] is reshaped to [kv_heads, heads/kv_heads,
hd], so the query heads that share a KV head are the rows of one matmul.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, __import__("os").path.dirname(__file__))
import zoolib  # noqa: E402

SCRIPT = "scripts/zoo/llama_decode.py"


def build(name, layers, dim, heads, kv_heads, inter, cache, vocab, seed, header):
    m = zoolib.Model(name, "bf16", seed, header)
    hd = dim // heads
    group = heads // kv_heads
    kvd = kv_heads * hd
    # The residual stream (x and the residual adds) is stored in f32, as
    # fused add-rmsnorm kernels keep it ("residual in fp32"): 2 bf16
    # roundings of the stream per layer would use most of the bf16
    # tolerance by layer 16. Everything else is bf16.
    x = m.input("x", [1, dim], dtype="f32")
    for l in range(layers):
        m.input(f"k_cache_{l}", [kv_heads, cache, hd])
        m.input(f"v_cache_{l}", [kv_heads, cache, hd])
    m.op("q_scale", "constant", value=round(hd ** -0.5, 6))
    h = x
    new_kv = []
    for l in range(layers):
        p = f"l{l}"
        m.comment(f"layer {l}: attention, {heads} query heads of {hd} over {kv_heads} KV heads, "
                  f"cache {cache} + the new token")
        zoolib.norm_params(m, p + "_attn_norm", dim, beta=False)
        n = m.op(p + "_attn_norm", "rmsnorm", [h, p + "_attn_norm_g"], eps=1e-5)
        q = zoolib.linear(m, p + "_q", n, dim, dim, bias=False)
        k = zoolib.linear(m, p + "_k", n, dim, kvd, bias=False)
        v = zoolib.linear(m, p + "_v", n, dim, kvd, bias=False)
        new_kv += [k, v]
        q = m.op(p + "_qs", "mul", [q, "q_scale"])
        q = m.op(p + "_qh", "reshape", [q], shape=[kv_heads, group, hd])
        kh = m.op(p + "_kh", "reshape", [k], shape=[kv_heads, 1, hd])
        vh = m.op(p + "_vh", "reshape", [v], shape=[kv_heads, 1, hd])
        sc = m.op(p + "_s_cache", "matmul", [q, f"k_cache_{l}"], transpose_b=True)
        sn = m.op(p + "_s_new", "matmul", [q, kh], transpose_b=True)
        s = m.op(p + "_scores", "concat", [sc, sn], axis=2)
        assert m.shape(s) == [kv_heads, group, cache + 1]
        pr = m.op(p + "_probs", "softmax", [s], axis=-1)
        pc = m.op(p + "_p_cache", "slice", [pr], axis=2, start=0, end=cache)
        pn = m.op(p + "_p_new", "slice", [pr], axis=2, start=cache, end=cache + 1)
        cc = m.op(p + "_ctx_cache", "matmul", [pc, f"v_cache_{l}"])
        cn = m.op(p + "_ctx_new", "matmul", [pn, vh])
        c = m.op(p + "_ctx", "add", [cc, cn])
        c = m.op(p + "_ctx_m", "reshape", [c], shape=[1, dim])
        o = zoolib.linear(m, p + "_o", c, dim, dim, bias=False, std=0.5 * dim ** -0.5)
        h = m.op(p + "_res1", "add", [h, o], dtype="f32")
        m.comment(f"layer {l}: SiLU-gated MLP {dim} -> {inter} -> {dim}")
        zoolib.norm_params(m, p + "_mlp_norm", dim, beta=False)
        n = m.op(p + "_mlp_norm", "rmsnorm", [h, p + "_mlp_norm_g"], eps=1e-5)
        g = zoolib.linear(m, p + "_gate", n, dim, inter, bias=False)
        u = zoolib.linear(m, p + "_up", n, dim, inter, bias=False)
        a = m.op(p + "_act", "mul", [m.op(p + "_silu", "silu", [g]), u])
        d = zoolib.linear(m, p + "_down", a, inter, dim, bias=False, std=0.5 * inter ** -0.5)
        h = m.op(p + "_res2", "add", [h, d], dtype="f32")
        assert m.shape(h) == [1, dim]
    m.comment(f"final rmsnorm and the LM head ({dim} x {vocab})")
    zoolib.norm_params(m, "final_norm", dim, beta=False)
    n = m.op("final_norm", "rmsnorm", [h, "final_norm_g"], eps=1e-5)
    logits = zoolib.linear(m, "lm_head", n, dim, vocab, bias=False)
    assert m.shape(logits) == [1, vocab]
    m.output(logits, *new_kv)
    return m


def header(what, layers, dim, heads, kv_heads, inter, cache, vocab, extra):
    return f"""{what}

One decode step of a Llama-style decoder at batch 1 (one new token), bf16:
{layers} layers of hidden {dim}; per layer rmsnorm, q/k/v projections without bias,
grouped-query attention with {heads} query heads of {dim // heads} over {kv_heads} KV heads, attention
of the new token over a KV cache of {cache} positions (inputs k_cache_L, v_cache_L
[{kv_heads}, {cache}, {dim // heads}]) plus itself, output projection, residual, rmsnorm, SiLU-gated
MLP with intermediate {inter}, residual; a final rmsnorm and an LM head of {vocab}
tokens. Outputs: the logits and every layer's new key and value (the entries a
decode step appends to the cache).{extra}

Left out: the token embedding lookup (x is the new token's embedding row) and
rotary position embeddings (the cache holds rotated keys; rotating q and the new
k is elementwise work that does not change the graph's shape).

Precision: the residual stream (input x and the residual adds) is f32, the
rest bf16, as fused add-rmsnorm kernels keep the residual in fp32; with a bf16
stream, 32 roundings of it alone use most of the bf16 tolerance at layer 16.

Weights normal, std 1/sqrt(fan_in), halved on the o and down projections so
each layer adds a modest update to the stream, as in trained models; norm
gammas in [0.9, 1.1]; cache values normal, std 1.

Generated by {SCRIPT}: edit that instead."""


def main():
    args = zoolib.main_args()
    full_args = (16, 2048, 32, 8, 5632, 1024, 32000)
    full = build("llama_decode", *full_args, 81, header(
        "A Llama decode step at 1B scale, full size (for GPU benchmarks).", *full_args,
        " Shapes: hidden 2048, 16 layers, 32 heads of 64 with 8 KV heads as Llama 3.2 1B (the "
        "model of Hazy Research's megakernel); intermediate 5632 and the 32000-token vocabulary as "
        "TinyLlama 1.1B (Llama 2's tokenizer). The LM head is included: its 131 MB of bf16 weights are "
        "8% of the step's weight traffic."))
    small_args = (2, 64, 4, 2, 176, 16, 256)
    small = build("llama_decode_small", *small_args, 82, header(
        "A Llama decode step, shrunk so the host backend runs it in CI.", *small_args,
        " llama_decode.yaml has the real shapes (hidden 2048, 16 layers, 32 heads over 8 KV heads, "
        "intermediate 5632, cache 1024, vocabulary 32000)."))
    zoolib.finish(args, full, small)


if __name__ == "__main__":
    main()
