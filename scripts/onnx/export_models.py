#!/usr/bin/python3
"""Exports real PyTorch models to ONNX for anvil's import tests: random
weights, BatchNorm statistics gathered from real activations (a few batches
in training mode), small inputs. For each model writes OUT/NAME.onnx,
OUT/NAME/inputs/INPUT.npy and OUT/NAME/expected/OUTPUT.npy, the latter
computed by PyTorch in float64 from the same f32 weights and inputs.

usage: export_models.py OUT [NAME ...]"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

from blocks import DilatedPoolNet, GptBlock, Gpt2Block, RmsMlp, Wav2VecFrontEnd, encoder_layer


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
    # issue 16's fixes: a causal mask by masked_fill(-inf), 1-D convolutions
    # and pools, dilated max pools, SiLU and squeeze-excitation
    "gpt2_masked_fill": (lambda: Gpt2Block("-inf"), (2, 9, 48), 13),
    "wav2vec_frontend": (Wav2VecFrontEnd, (2, 1, 403), 17),
    "dilated_pools": (DilatedPoolNet, (2, 3, 23, 29), 11),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(num_classes=10), (2, 3, 63, 63), 13),
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
    # Only the BatchNorms train: dropout and stochastic depth (efficientnet,
    # convnext) stay as at inference, or the statistics would describe
    # activations the eval model never sees, and it would blow up.
    model.eval()
    for m in bns:
        m.train()
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
        own = model(x).double().numpy()  # PyTorch's own f32 run: how far f32 rounding alone moves the output
        want = model.double()(x.double()).numpy()
    os.makedirs(os.path.join(out, name, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(out, name, "expected"), exist_ok=True)
    np.save(os.path.join(out, name, "inputs", "x.npy"), x.numpy().astype("<f4"))
    np.save(os.path.join(out, name, "expected", "y.npy"), want)
    with open(os.path.join(out, name, "torch_f32_error.txt"), "w") as f:
        f.write(f"{np.linalg.norm(own - want) / max(np.linalg.norm(want), 1e-30):.6e}\n")
    if dynamic:
        with open(os.path.join(out, name, "input_shape.txt"), "w") as f:
            f.write("x=" + ",".join(map(str, shape)) + "\n")
    print(f"exported {name} (opset {opset}, input {list(shape)}) to {path}", file=sys.stderr)


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    for name in names:
        export(name, out)


if __name__ == "__main__":
    main()
