"""Benchmark networks written in plain torch (no torchvision, no downloaded weights).

Imports torch at module level: only networks.py imports this module, and only when a network is
requested, so `import cdmpp_tvm.workloads` stays torch-free. Weights are random; they do not change
which tensor programs a network contains, only the numbers flowing through them.

Every builder takes the batch size and returns (model in eval mode, example input tuple).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .torch_zoo import ZOO_BUILDERS

# ----------------------------------------------------------------------------- ResNet (2D and 3D)


class BasicBlock(nn.Module):
    """ResNet basic block; `dims` selects Conv2d/BatchNorm2d or Conv3d/BatchNorm3d."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1, dims: int = 2):
        super().__init__()
        conv, norm = _conv_norm(dims)
        self.body = nn.Sequential(
            conv(in_ch, ch, 3, stride, 1, bias=False), norm(ch), nn.ReLU(inplace=True),
            conv(ch, ch, 3, 1, 1, bias=False), norm(ch),
        )
        self.shortcut = _projection(in_ch, ch, stride, dims)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck (1x1 reduce, 3x3 with the stride, 1x1 expand x4)."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1, dims: int = 2):
        super().__init__()
        conv, norm = _conv_norm(dims)
        out_ch = ch * self.expansion
        self.body = nn.Sequential(
            conv(in_ch, ch, 1, 1, 0, bias=False), norm(ch), nn.ReLU(inplace=True),
            conv(ch, ch, 3, stride, 1, bias=False), norm(ch), nn.ReLU(inplace=True),
            conv(ch, out_ch, 1, 1, 0, bias=False), norm(out_ch),
        )
        self.shortcut = _projection(in_ch, out_ch, stride, dims)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def _conv_norm(dims: int):
    return (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)


def _projection(in_ch: int, out_ch: int, stride: int, dims: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    conv, norm = _conv_norm(dims)
    return nn.Sequential(conv(in_ch, out_ch, 1, stride, 0, bias=False), norm(out_ch))


class ResNet(nn.Module):
    """ImageNet ResNet; `stem` maps the input to 64 channels at the stage-1 resolution."""

    def __init__(self, block, layers: list[int], stem: nn.Module, dims: int = 2, num_classes: int = 1000):
        super().__init__()
        self.stem = stem
        stages, in_ch = [], 64
        for i, n_blocks in enumerate(layers):
            ch = 64 * 2**i
            for j in range(n_blocks):
                stages.append(block(in_ch, ch, stride=2 if (i > 0 and j == 0) else 1, dims=dims))
                in_ch = ch * block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def _resnet2d(block, layers: list[int], batch_size: int):
    stem = nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
    )
    return ResNet(block, layers, stem), (torch.randn(batch_size, 3, 224, 224),)


def resnet18(batch_size: int):
    return _resnet2d(BasicBlock, [2, 2, 2, 2], batch_size)


def resnet50(batch_size: int):
    return _resnet2d(Bottleneck, [3, 4, 6, 3], batch_size)


def resnet3d_18(batch_size: int):
    """R3D-18 (video ResNet-18 with full 3x3x3 convs) on an 8-frame 112x112 clip.

    8 frames instead of the usual 16 keeps end-to-end measurement affordable on a CPU; the kernel
    shapes, and so the tasks, are those of R3D-18 except for the temporal extent.
    """
    stem = nn.Sequential(
        nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True)
    )
    model = ResNet(BasicBlock, [2, 2, 2, 2], stem, dims=3, num_classes=400)
    return model, (torch.randn(batch_size, 3, 8, 112, 112),)


# ----------------------------------------------------------------------------- MobileNetV2


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int):
        super().__init__()
        hidden = in_ch * expand
        layers = [_conv_bn_relu6(in_ch, hidden, 1)] if expand != 1 else []
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch),  # linear bottleneck
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    # (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers, in_ch = [_conv_bn_relu6(3, 32, 3, 2)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        layers.append(_conv_bn_relu6(in_ch, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(batch_size: int):
    return MobileNetV2(), (torch.randn(batch_size, 3, 224, 224),)


# ----------------------------------------------------------------------------- Transformer layers


class SelfAttention(nn.Module):
    """Multi-head self-attention written out (not nn.MultiheadAttention) so the exported graph is the
    textbook one: QKV projections, batched QK^T, softmax, batched AV, output projection."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q, self.k, self.v, self.out = (nn.Linear(hidden, hidden) for _ in range(4))

    def forward(self, x):
        b, s, h = x.shape

        def split_heads(t):
            return t.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split_heads(self.q(x)), split_heads(self.k(x)), split_heads(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(context.transpose(1, 2).reshape(b, s, h))


class EncoderLayer(nn.Module):
    """Transformer encoder layer: post-norm as in BERT, pre-norm as in ViT."""

    def __init__(self, hidden: int, heads: int, ffn: int, pre_norm: bool):
        super().__init__()
        self.pre_norm = pre_norm
        self.attn = SelfAttention(hidden, heads)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)

    def forward(self, x):
        if self.pre_norm:
            x = x + self.attn(self.norm1(x))
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.ffn(x))


def bert_base_layer(batch_size: int):
    """One BERT-base encoder layer on already-embedded tokens (seq 128, hidden 768, 12 heads, FFN 3072)."""
    return EncoderLayer(768, 12, 3072, pre_norm=False), (torch.randn(batch_size, 128, 768),)


class ViTB16OneLayer(nn.Module):
    """ViT-B/16 front end (16x16/16 patch conv, class token, position embedding), one encoder layer,
    and the classification head: 224x224 image -> 196 patches + 1 class token = 197 tokens."""

    def __init__(self, hidden: int = 768, num_classes: int = 1000):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, hidden, 16, 16)
        self.cls_token = nn.Parameter(torch.randn(1, 1, hidden))
        self.pos_embed = nn.Parameter(torch.randn(1, 197, hidden))
        self.layer = EncoderLayer(hidden, 12, 3072, pre_norm=True)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, img):
        x = self.patch_embed(img).flatten(2).transpose(1, 2)  # (b, 196, hidden)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.layer(x))
        return self.head(x[:, 0])


def vit_b16_layer(batch_size: int):
    return ViTB16OneLayer(), (torch.randn(batch_size, 3, 224, 224),)


# ----------------------------------------------------------------------------- LSTM


class UnrolledLSTM(nn.Module):
    """Stacked LSTM written by hand and unrolled over time.

    nn.LSTM does import (torch.export decomposes it), but every time step then slices the input at
    its own offset, giving ~30 near-identical strided_slice tasks per layer. Here each layer does the
    input projection of all steps in one matmul and splits it with one `chunk` (a single Relax split),
    and every step runs structurally identical ops on (1, batch, .) tensors, so MetaSchedule extracts
    a few tasks whose weight is the number of steps, which is how an RNN really spends its time.
    """

    def __init__(self, input_size: int, hidden: int, num_layers: int):
        super().__init__()
        self.hidden = hidden
        sizes = [input_size] + [hidden] * (num_layers - 1)
        self.w_ih = nn.ModuleList(nn.Linear(n, 4 * hidden) for n in sizes)
        self.w_hh = nn.ParameterList(nn.Parameter(torch.randn(hidden, 4 * hidden) / hidden**0.5) for _ in sizes)

    def forward(self, x):  # x: (seq, batch, input)
        steps = x.shape[0]
        for w_ih, w_hh in zip(self.w_ih, self.w_hh):
            h = x.new_zeros(1, x.shape[1], self.hidden)
            c = x.new_zeros(1, x.shape[1], self.hidden)
            outputs = []
            # w_hh is stored (hidden, 4*hidden) so no per-step weight transpose appears in the graph.
            for x_t in torch.chunk(w_ih(x), steps, dim=0):
                i, f, g, o = torch.chunk(x_t + torch.matmul(h, w_hh), 4, dim=2)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            x = torch.cat(outputs, dim=0)
        return x


def lstm(batch_size: int):
    """2-layer LSTM, hidden 256, input 256, 32 time steps (a small language-model encoder)."""
    return UnrolledLSTM(256, 256, num_layers=2), (torch.randn(32, batch_size, 256),)


# ----------------------------------------------------------------------------- DCGAN


def dcgan_generator(batch_size: int):
    """DCGAN generator (Radford et al.): 100-d noise -> 64x64 RGB via four stride-2 transposed convs."""
    ngf = 64

    def up(in_ch, out_ch):
        return [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(True)]

    model = nn.Sequential(
        nn.ConvTranspose2d(100, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),  # 4x4
        *up(ngf * 8, ngf * 4), *up(ngf * 4, ngf * 2), *up(ngf * 2, ngf),  # 8x8, 16x16, 32x32
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh(),  # 64x64
    )
    return model, (torch.randn(batch_size, 100, 1, 1),)


BUILDERS: dict[str, Callable[[int], tuple[nn.Module, tuple[torch.Tensor, ...]]]] = {
    f.__name__: f
    for f in (resnet18, resnet50, mobilenet_v2, bert_base_layer, vit_b16_layer, lstm, dcgan_generator, resnet3d_18)
}
if _clash := BUILDERS.keys() & ZOO_BUILDERS.keys():
    raise RuntimeError(f"zoo networks shadow built-in ones: {sorted(_clash)}")
BUILDERS.update(ZOO_BUILDERS)  # the network zoo (torch_zoo*.py)


def build(name: str, batch_size: int, seed: int = 0):
    """(model in eval mode, example inputs), with weights drawn from `seed` without touching the
    caller's global torch RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, inputs = BUILDERS[name](batch_size)
    return model.eval(), inputs
