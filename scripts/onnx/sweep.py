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
import os
import sys
import time

import torch
import torchvision.models as tv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_model import POLICIES, CheckFailed, check  # noqa: E402
from export_models import export_model  # noqa: E402
from blocks import (BertBlock, DecoderLayer, DilatedPoolNet, Gpt2Block, PaddedMha, T5Block,  # noqa: E402
                    Wav2VecFrontEnd, lone_erf)


def vision(ctor, **kw):
    def make():
        model = ctor(num_classes=10, **kw)
        with torch.no_grad():  # a zero-initialised head (vit) would make every output its bias
            for p in model.parameters():
                if not p.any():
                    p.normal_(0, 0.05)
        return model
    return make


# name: (constructor, input shape, opsets)
SEQ = [11, 13, 17]
CASES = {
    "gpt2_block_neginf": (lambda: Gpt2Block("-inf"), (2, 9, 48), SEQ),
    "gpt2_block_finfo": (lambda: Gpt2Block("finfo"), (2, 9, 48), SEQ),
    "decoder_layer": (DecoderLayer, (2, 11, 32), SEQ),
    "mha_key_padding": (PaddedMha, (2, 9, 40), SEQ),
    "bert_block_additive_mask": (BertBlock, (2, 13, 48), SEQ),
    "t5_block": (T5Block, (2, 7, 40), SEQ),
    "wav2vec_frontend": (Wav2VecFrontEnd, (2, 1, 403), SEQ),
    "dilated_pools": (DilatedPoolNet, (2, 3, 23, 29), [11, 17]),
    "lone_erf": (lone_erf, (2, 5, 12), [13]),
    "squeezenet1_1": (vision(tv.squeezenet1_1), (2, 3, 71, 71), [17]),
    "shufflenet_v2_x0_5": (vision(tv.shufflenet_v2_x0_5), (2, 3, 65, 65), [13]),
    "mnasnet0_5": (vision(tv.mnasnet0_5), (2, 3, 67, 67), [11]),
    "mobilenet_v3_large": (vision(tv.mobilenet_v3_large), (2, 3, 61, 61), [17]),
    "efficientnet_b0": (vision(tv.efficientnet_b0), (2, 3, 63, 63), [13]),
    "regnet_x_400mf": (vision(tv.regnet_x_400mf), (2, 3, 57, 57), [11]),
    "regnet_y_400mf": (vision(tv.regnet_y_400mf), (2, 3, 63, 63), [13]),
    "googlenet": (vision(tv.googlenet, aux_logits=False, init_weights=True), (2, 3, 63, 63), [13]),
    "densenet121": (vision(tv.densenet121), (2, 3, 53, 53), [13]),
    "resnet34": (vision(tv.resnet34), (2, 3, 61, 61), [17]),
    "inception_v3": (vision(tv.inception_v3, aux_logits=False, init_weights=True), (2, 3, 79, 79), [17]),
    "convnext_tiny": (vision(tv.convnext_tiny), (2, 3, 63, 63), [17]),
    "swin_t": (vision(tv.swin_t), (2, 3, 67, 67), [17]),
    "efficientnet_v2_s": (vision(tv.efficientnet_v2_s), (2, 3, 49, 49), [17]),
    "vit_b_16": (vision(tv.vit_b_16, image_size=48), (2, 3, 48, 48), [13]),
    "resnet50": (vision(tv.resnet50), (2, 3, 59, 59), [13]),
    "resnext50_32x4d": (vision(tv.resnext50_32x4d), (2, 3, 57, 57), [13]),
    "wide_resnet50_2": (vision(tv.wide_resnet50_2), (2, 3, 45, 45), [11]),
    "alexnet": (vision(tv.alexnet), (2, 3, 225, 225), [13]),
    "vgg11": (vision(tv.vgg11), (2, 3, 225, 225), [11]),
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
    """anvil's refusal (it names the .onnx file), else its failed check, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for mark in (".onnx:", "FAILED"):
        for line in lines:
            if mark in line:
                return line
    return lines[-1] if lines else ""


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(c[0] for c in cases([])))
        return
    anvil, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    print("| model | opset | input | result | max error vs PyTorch f64 (rel. L2 / abs) | PyTorch f32 vs f64 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for case, model, ctor, shape, opset in cases(sys.argv[3:]):
        name = case.replace("@", "_op")
        start = time.time()
        try:
            try:
                export_model(name, ctor, shape, opset, out)
            except Exception as e:  # the exporter's own limits: reported, not anvil's
                if os.path.exists(os.path.join(out, name, "torch_f32_error.txt")):
                    os.remove(os.path.join(out, name, "torch_f32_error.txt"))
                raise CheckFailed("PyTorch could not export it: " + str(e).splitlines()[0])
            errors = check(anvil, out, name, POLICIES, quiet=True)
            rel = max(e[0] for e in errors.values())
            ab = max(e[1] for e in errors.values())
            result, err = f"matches, {len(errors)} policies + YAML round trip", f"{rel:.1e} / {ab:.1e}"
        except CheckFailed as e:
            said = first_error_line(e.output).replace("|", "\\|")
            result, err = "**" + str(e) + "**", "`" + said + "`" if said else "-"
        dims = "x".join(map(str, shape))
        own_file = os.path.join(out, name, "torch_f32_error.txt")
        own = f"{float(open(own_file).read()):.1e}" if os.path.exists(own_file) else "-"
        print(f"| {model} | {opset} | {dims} | {result} | {err} | {own} | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
