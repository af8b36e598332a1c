"""The stacked LSTM that scripts/zoo/lstm_tc.py unrolls into matmuls,
slices, sigmoid and tanh, recognised in a model and mapped onto torch.nn.LSTM
(cuDNN's LSTM) for the torch_cudnn_lstm baseline."""
import collections

import numpy as np

from . import Skip

# nn.LSTM's sizes, and what each model output is ("sequence": every h of
# the last layer; "final": its last h)
LstmLayout = collections.namedtuple("LstmLayout", "layers steps features hidden outputs")


def lstm_tc_nodes(layers, steps, hidden):
    """The nodes scripts/zoo/lstm_tc.py writes for a stacked LSTM over the
    input x [steps, features], with params w{l} [features or H, 4H], u{l}
    [H, 4H] and b{l} [4H] per layer: z = x_t @ W + b (+ h @ U from step 1
    on: the state starts at zero), gate columns (i, f, o, g), one sigmoid
    over i|f|o and tanh over g, c = f*c + i*g (c = i*g at step 0), h =
    o*tanh(c); y = the last layer's h of every step, concatenated. Returns
    (node mappings as in the YAML, the name of the last layer's final h)."""
    H, nodes = hidden, []

    def op(name, kind, inputs, **attrs):
        nodes.append(dict(name=name, op=kind, inputs=list(inputs), **attrs))
        return name

    prev = [op(f"x_t{t}", "slice", ["x"], axis=0, start=t, end=t + 1) for t in range(steps)]
    for l in range(layers):
        h = c = None
        outs = []
        for t in range(steps):
            p = f"l{l}t{t}_"
            z = op(p + "xb", "add", [op(p + "xw", "matmul", [prev[t], f"w{l}"]), f"b{l}"])
            if h is not None:
                z = op(p + "z", "add", [z, op(p + "hu", "matmul", [h, f"u{l}"])])
            sig = op(p + "sig", "sigmoid", [op(p + "sg", "slice", [z], axis=1, start=0, end=3 * H)])
            g = op(p + "g", "tanh", [op(p + "gz", "slice", [z], axis=1, start=3 * H, end=4 * H)])
            i = op(p + "i", "slice", [sig], axis=1, start=0, end=H)
            o = op(p + "o", "slice", [sig], axis=1, start=2 * H, end=3 * H)
            c_new = ig = op(p + "ig", "mul", [i, g])
            if c is not None:
                f = op(p + "f", "slice", [sig], axis=1, start=H, end=2 * H)
                c_new = op(p + "c", "add", [op(p + "fc", "mul", [f, c]), ig])
            h = op(p + "h", "mul", [o, op(p + "tc", "tanh", [c_new])])
            c = c_new
            outs.append(h)
        prev = outs
    op("y", "concat", prev, axis=0)
    return nodes, prev[-1]


def _attrs(node):
    return {k: v for k, v in node.items() if k not in ("name", "op", "inputs", "dtype")}


def lstm_layout(model):
    """The LstmLayout of `model`, or Skip saying why it is not one."""
    why = "not a stacked LSTM in the layout of scripts/zoo/lstm_tc.py"
    inputs = [n for n, k in model.kind.items() if k == "inputs"]
    if inputs != ["x"] or len(model.decls["x"]["shape"]) != 2 or "w0" not in model.decls or "u0" not in model.decls:
        raise Skip(f"{why} (it needs one input x [steps, features] and params w0, u0, b0, ...)")
    steps, features = (int(d) for d in model.decls["x"]["shape"])
    hidden = int(model.decls["u0"]["shape"][0])
    layers = 0
    while f"w{layers}" in model.decls:
        layers += 1
    for l in range(layers):
        want = {f"w{l}": [features if l == 0 else hidden, 4 * hidden], f"u{l}": [hidden, 4 * hidden],
                f"b{l}": [4 * hidden]}
        for name, shape in want.items():
            if name not in model.decls or [int(d) for d in model.decls[name]["shape"]] != shape:
                raise Skip(f"{why} (param {name} should be {shape})")
    expected, final = lstm_tc_nodes(layers, steps, hidden)
    if set(model.nodes) != {n["name"] for n in expected}:
        raise Skip(f"{why} (its nodes are not the unrolled cells of {layers} layers x {steps} steps)")
    for e in expected:
        m = model.nodes[e["name"]]
        if m["op"] != e["op"] or list(m.get("inputs") or []) != e["inputs"] or _attrs(m) != _attrs(e):
            raise Skip(f"{why} (node '{e['name']}' differs from it)")
    if len(set(model.dtypes.values())) != 1:
        raise Skip(f"{why} (its tensors do not share one dtype)")
    kinds = {"y": "sequence", final: "final"}
    if any(o not in kinds for o in model.outputs):
        raise Skip(f"{why} (outputs other than y and {final})")
    return LstmLayout(layers, steps, features, hidden, [kinds[o] for o in model.outputs])


def lstm_weights(layout, values):
    """Per layer, nn.LSTM's (weight_ih, weight_hh, bias_ih, bias_hh) from
    the graph's w, u, b: nn.LSTM multiplies W_ih [4H, in] @ x with gate rows
    (i, f, g, o); the graph multiplies x @ W [in, 4H] with gate columns
    (i, f, o, g). The graph has one bias, so bias_hh is zero."""
    H = layout.hidden
    rows = np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
    out = []
    for l in range(layout.layers):
        w, u, b = (np.asarray(values[f"{p}{l}"], np.float64) for p in "wub")
        out.append((w[:, rows].T.copy(), u[:, rows].T.copy(), b[rows].copy(), np.zeros(4 * H)))
    return out


def torch_lstm(torch, layout, weights, device, dtype):
    """nn.LSTM of `layout`'s sizes holding `weights` (lstm_weights), for inference."""
    lstm = torch.nn.LSTM(layout.features, layout.hidden, num_layers=layout.layers)
    lstm = lstm.to(device=device, dtype=dtype).eval()
    with torch.no_grad():
        for l, arrays in enumerate(weights):
            for pname, arr in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), arrays):
                getattr(lstm, f"{pname}_l{l}").copy_(torch.from_numpy(arr.astype(np.float32)))
    lstm.flatten_parameters()
    return lstm


def lstm_equations(x, weights):
    """nn.LSTM's documented equations in float64, zero initial state, batch
    1: (every h of the last layer [steps, H], its last h [1, H])."""
    seq = np.asarray(x, np.float64)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    for w_ih, w_hh, b_ih, b_hh in weights:
        H = w_hh.shape[1]
        h, c, outs = np.zeros(H), np.zeros(H), []
        for x_t in seq:
            i, f, g, o = np.split(w_ih @ x_t + b_ih + w_hh @ h + b_hh, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            outs.append(h)
        seq = np.stack(outs)
    return seq, seq[-1:]
