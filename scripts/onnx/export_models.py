#!/usr/bin/python3
"""Exports real PyTorch models to ONNX for anvil's import tests: random
weights, BatchNorm statistics gathered from real activations (a few batches
in training mode), small inputs. For each model writes OUT/NAME.onnx,
OUT/NAME/inputs/INPUT.npy and OUT/NAME/expected/OUTPUT.npy, the latter
computed by PyTorch in float64 from the same f32 weights and inputs.

usage: export_models.py OUT [NAME ...]"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision


class GptBlock(nn.Module):
    """A GPT-2 style pre-norm block: causal attention (additive mask), GELU MLP."""

    def __init__(self, d=64, heads=4, seq=16, tanh_gelu=True):
        super().__init__()
        self.heads, self.tanh_gelu = heads, tanh_gelu
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        mask = torch.triu(torch.full((seq, seq), -1e4), diagonal=1)
        self.register_buffer("mask", mask)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.reshape(b, t, h, d // h).transpose(1, 2)
        k = k.reshape(b, t, h, d // h).transpose(1, 2)
        v = v.reshape(b, t, h, d // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h) + self.mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        g = nn.functional.gelu(self.fc(self.ln2(x)), approximate="tanh" if self.tanh_gelu else "none")
        return x + self.out(g)


class RmsMlp(nn.Module):
    """A Llama-style MLP: RMSNorm written out, SiLU gate."""

    def __init__(self, d=32):
        super().__init__()
        self.g = nn.Parameter(torch.randn(d) * 0.1 + 1)
        self.up, self.gate, self.down = nn.Linear(d, 2 * d, bias=False), nn.Linear(d, 2 * d, bias=False), nn.Linear(2 * d, d, bias=False)

    def forward(self, x):
        n = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.g
        return x + self.down(nn.functional.silu(self.gate(n)) * self.up(n))


def encoder_layer():
    return nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)


# name: (constructor, input shape, opset)
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (1, 3, 64, 64), 13),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(num_classes=10), (1, 3, 64, 64), 13),
    "squeezenet": (lambda: torchvision.models.squeezenet1_0(num_classes=10), (2, 3, 67, 67), 11),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), (1, 3, 64, 64), 14),
    "encoder_layer": (encoder_layer, (2, 16, 64), 14),
    "gpt_block": (lambda: GptBlock(), (1, 16, 64), 17),
    "gpt_block_erf": (lambda: GptBlock(tanh_gelu=False), (2, 16, 64), 12),
    "rms_mlp": (lambda: RmsMlp(), (1, 8, 32), 15),
    # a symbolic batch dim, fixed at run time with --input-shape x=3,3,48,40
    "resnet18_dynamic": (lambda: torchvision.models.resnet18(num_classes=7), (3, 3, 48, 40), 17),
}
DYNAMIC = {"resnet18_dynamic": {"x": {0: "batch"}, "y": {0: "batch"}}}


def calibrate_batchnorm(model, shape):
    """BatchNorm running statistics from real activations, not the 0/1 defaults."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn((8,) + tuple(shape[1:])))
    for m in bns:  # and affine parameters that are not the identity
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-0.2, 0.2)


def export(name, out):
    ctor, shape, opset = MODELS[name]
    export_model(name, ctor, shape, opset, out, DYNAMIC.get(name))


def export_model(name, ctor, shape, opset, out, dynamic=None):
    """Exports ctor() at `shape` and `opset` to OUT/NAME.onnx with its input
    and PyTorch's float64 output beside it (OUT/NAME/inputs, expected)."""
    torch.manual_seed(sum(map(ord, name)))
    model = ctor()
    calibrate_batchnorm(model, shape)
    model.eval()
    x = torch.randn(shape)
    path = os.path.join(out, name + ".onnx")
    os.makedirs(out, exist_ok=True)
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], opset_version=opset,
                      do_constant_folding=True, dynamic_axes=dynamic)
    with torch.no_grad():
        want = model.double()(x.double()).numpy()
    os.makedirs(os.path.join(out, name, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(out, name, "expected"), exist_ok=True)
    np.save(os.path.join(out, name, "inputs", "x.npy"), x.numpy().astype("<f4"))
    np.save(os.path.join(out, name, "expected", "y.npy"), want)
    if dynamic:
        with open(os.path.join(out, name, "input_shape.txt"), "w") as f:
            f.write("x=" + ",".join(map(str, shape)) + "\n")
    print(f"exported {name} (opset {opset}, input {list(shape)}) to {path}")


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    for name in names:
        export(name, out)


if __name__ == "__main__":
    main()
