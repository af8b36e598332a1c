#!/usr/bin/python3
"""The "no one here has seen" sweep of the ONNX importer: torchvision
classification models and transformer blocks that the CI models
(export_models.py) do not cover, at odd input sizes and batch 2, exported
with random weights (BatchNorm statistics from real activations) and run
through `anvil run M.onnx` under every policy on the host backend, then
imported to YAML and run again (check_model.py). Prints one Markdown table
row per case: the model, opset, input, the result, and the largest error
against PyTorch in float64 over the policies (relative L2, max abs), or the
exact refusal.

usage: sweep.py ANVIL OUT [NAME ...]   (NAME: a case as 'model@opset', or a model for all its opsets)
       sweep.py --list"""
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torchvision.models as tv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_model import POLICIES, CheckFailed, check  # noqa: E402
from export_models import export_model  # noqa: E402

F = nn.functional


def causal_attention(q, k, v, keep, fill):
    """Scaled dot-product attention with the future masked by `fill`
    ('-inf' through masked_fill, 'finfo' through torch.where and finfo.min)."""
    t = q.shape[-2]
    att = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    keep = keep[:, :, :t, :t]
    if fill == "-inf":
        att = att.masked_fill(~keep, float("-inf"))
    else:
        att = torch.where(keep, att, torch.tensor(torch.finfo(att.dtype).min, dtype=att.dtype))
    return att.softmax(-1) @ v


class Gpt2Block(nn.Module):
    """HF GPT-2's block: fused c_attn, causal mask by masked_fill / where, gelu_new MLP."""

    def __init__(self, fill, d=48, heads=4, positions=16):
        super().__init__()
        self.fill, self.heads = fill, heads
        self.register_buffer("bias", torch.tril(torch.ones(positions, positions, dtype=torch.bool))[None, None])
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def split(self, t):
        b, s, d = t.shape
        return t.view(b, s, self.heads, d // self.heads).permute(0, 2, 1, 3)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        y = causal_attention(self.split(q), self.split(k), self.split(v), self.bias, self.fill)
        x = x + self.c_proj(y.permute(0, 2, 1, 3).reshape(b, s, d))
        h = self.c_fc(self.ln_2(x))
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        return x + self.mlp_proj(h)


class DecoderLayer(nn.Module):
    """nn.TransformerDecoderLayer with a causal float mask (-inf above the diagonal); its memory from x."""

    def __init__(self, d=32, seq=11):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(d, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.memory = nn.Linear(d, d)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq))

    def forward(self, x):
        return self.layer(x, self.memory(x).relu(), tgt_mask=self.mask)


class PaddedMha(nn.Module):
    """nn.MultiheadAttention with a key-padding mask: the last keys of the second sequence are padding."""

    def __init__(self, d=40, batch=2, seq=9):
        super().__init__()
        self.mha = nn.MultiheadAttention(d, 5, batch_first=True)
        pad = torch.zeros(batch, seq, dtype=torch.bool)
        pad[1, seq - 3:] = True
        self.register_buffer("pad", pad)

    def forward(self, x):
        return self.mha(x, x, x, key_padding_mask=self.pad, need_weights=False)[0]


class BertBlock(nn.Module):
    """A BERT layer (post-norm, erf GELU) under an additive attention mask: 0 where kept, -inf where padded."""

    def __init__(self, d=48, heads=3, batch=2, seq=13):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
        self.up, self.down = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        keep = torch.ones(batch, seq)
        keep[0, seq - 4:] = 0
        self.register_buffer("additive", ((1.0 - keep) * float("-inf")).nan_to_num(0.0, neginf=float("-inf"))[:, None, None, :])

    def heads_of(self, t):
        b, s, d = t.shape
        return t.view(b, s, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.heads_of(self.q(x)), self.heads_of(self.k(x)), self.heads_of(self.v(x))
        att = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + self.additive
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        x = self.ln1(x + self.o(y))
        return self.ln2(x + self.down(F.gelu(self.up(x))))


class T5Block(nn.Module):
    """T5's feed-forward: its RMSNorm (rsqrt, no mean subtraction) and a gated-GELU MLP."""

    def __init__(self, d=40):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(d) + 0.5)
        self.wi_0, self.wi_1 = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, 3 * d, bias=False)
        self.wo = nn.Linear(3 * d, d, bias=False)

    def forward(self, x):
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight
        return x + self.wo(F.gelu(self.wi_0(h), approximate="tanh") * self.wi_1(h))


class Wav2VecFrontEnd(nn.Module):
    """A wav2vec2-like 1-D conv feature encoder (layer-norm mode), then 1-D max and average pools."""

    def __init__(self, c=24):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(1, c, 10, 5), nn.Conv1d(c, c, 3, 2), nn.Conv1d(c, c, 2, 2, dilation=1)])
        self.norms = nn.ModuleList([nn.LayerNorm(c) for _ in self.convs])
        self.proj = nn.Linear(c, 16)
        self.pool = nn.MaxPool1d(3, 2, padding=1)
        self.avg = nn.AvgPool1d(2)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = F.gelu(norm(conv(x).transpose(1, 2)).transpose(1, 2))
        x = self.avg(self.pool(x))
        return self.proj(x.transpose(1, 2))


class DilatedPoolNet(nn.Module):
    """A small CNN with dilated max pools (DeepLab-style context)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(3, stride=1, padding=1, dilation=2)
        self.pool2 = nn.MaxPool2d(2, stride=2, dilation=(1, 2), ceil_mode=True)
        self.head = nn.Conv2d(8, 5, 1)

    def forward(self, x):
        return self.head(self.pool2(self.pool1(self.bn(self.conv(x)).relu())))


def lone_erf():
    class M(nn.Module):
        """erf outside a GELU (as a probit-like squashing)."""

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 12)

        def forward(self, x):
            return torch.erf(self.fc(x)) * x

    return M()


def vision(ctor, **kw):
    return lambda: ctor(num_classes=10, **kw)


# name: (constructor, input shape, opsets)
SEQ = [11, 13, 17]
CASES = {
    "alexnet": (vision(tv.alexnet), (2, 3, 225, 225), [13]),
    "vgg11": (vision(tv.vgg11), (2, 3, 225, 225), [11]),
    "resnet34": (vision(tv.resnet34), (2, 3, 61, 61), [17]),
    "resnet50": (vision(tv.resnet50), (2, 3, 59, 59), [13]),
    "resnext50_32x4d": (vision(tv.resnext50_32x4d), (2, 3, 57, 57), [13]),
    "wide_resnet50_2": (vision(tv.wide_resnet50_2), (2, 3, 45, 45), [11]),
    "densenet121": (vision(tv.densenet121), (2, 3, 53, 53), [13]),
    "googlenet": (vision(tv.googlenet, aux_logits=False, init_weights=True), (2, 3, 63, 63), [13]),
    "inception_v3": (vision(tv.inception_v3, aux_logits=False, init_weights=True), (2, 3, 79, 79), [17]),
    "mnasnet0_5": (vision(tv.mnasnet0_5), (2, 3, 67, 67), [11]),
    "shufflenet_v2_x0_5": (vision(tv.shufflenet_v2_x0_5), (2, 3, 65, 65), [13]),
    "squeezenet1_1": (vision(tv.squeezenet1_1), (2, 3, 71, 71), [17]),
    "mobilenet_v3_large": (vision(tv.mobilenet_v3_large), (2, 3, 61, 61), [17]),
    "efficientnet_b0": (vision(tv.efficientnet_b0), (2, 3, 63, 63), [13]),
    "efficientnet_v2_s": (vision(tv.efficientnet_v2_s), (2, 3, 49, 49), [17]),
    "regnet_y_400mf": (vision(tv.regnet_y_400mf), (2, 3, 63, 63), [13]),
    "regnet_x_400mf": (vision(tv.regnet_x_400mf), (2, 3, 57, 57), [11]),
    "convnext_tiny": (vision(tv.convnext_tiny), (2, 3, 63, 63), [17]),
    "swin_t": (vision(tv.swin_t), (2, 3, 67, 67), [17]),
    "vit_b_16": (vision(tv.vit_b_16, image_size=48), (2, 3, 48, 48), [13]),
    "gpt2_block_neginf": (lambda: Gpt2Block("-inf"), (2, 9, 48), SEQ),
    "gpt2_block_finfo": (lambda: Gpt2Block("finfo"), (2, 9, 48), SEQ),
    "decoder_layer": (DecoderLayer, (2, 11, 32), SEQ),
    "mha_key_padding": (PaddedMha, (2, 9, 40), SEQ),
    "bert_block_additive_mask": (BertBlock, (2, 13, 48), SEQ),
    "t5_block": (T5Block, (2, 7, 40), SEQ),
    "wav2vec_frontend": (Wav2VecFrontEnd, (2, 1, 403), SEQ),
    "dilated_pools": (DilatedPoolNet, (2, 3, 23, 29), [11, 17]),
    "lone_erf": (lone_erf, (2, 5, 12), [13]),
}


def cases(names):
    out = []
    for model, (ctor, shape, opsets) in CASES.items():
        for opset in opsets:
            case = f"{model}@{opset}"
            if not names or model in names or case in names:
                out.append((case, model, ctor, shape, opset))
    return out


def first_error_line(text):
    for line in text.splitlines():
        if "error" in line.lower() or ".onnx:" in line:
            return line.strip()
    return text.strip().splitlines()[-1] if text.strip() else ""


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(c[0] for c in cases([])))
        return
    anvil, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    print("| model | opset | input | result | max error vs PyTorch f64 (rel. L2 / abs) | seconds |")
    print("|---|---|---|---|---|---|")
    for case, model, ctor, shape, opset in cases(sys.argv[3:]):
        name = case.replace("@", "_op")
        start = time.time()
        try:
            try:
                export_model(name, ctor, shape, opset, out)
            except Exception as e:  # the exporter's own limits: reported, not anvil's
                raise CheckFailed("PyTorch could not export it: " + str(e).splitlines()[0])
            errors = check(anvil, out, name, POLICIES, quiet=True)
            rel = max(e[0] for e in errors.values())
            ab = max(e[1] for e in errors.values())
            result, err = f"matches, {len(errors)} policies + YAML round trip", f"{rel:.1e} / {ab:.1e}"
        except CheckFailed as e:
            result, err = "**" + str(e) + "**", "`" + first_error_line(e.output).replace("|", "\\|") + "`"
        dims = "x".join(map(str, shape))
        print(f"| {model} | {opset} | {dims} | {result} | {err} | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
