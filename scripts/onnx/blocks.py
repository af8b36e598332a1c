"""The PyTorch modules that the ONNX import tests export (export_models.py
for CI, sweep.py for the wider sweep): transformer blocks as libraries
write them, and small networks around one feature each."""
import math

import torch
import torch.nn as nn

F = nn.functional


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
