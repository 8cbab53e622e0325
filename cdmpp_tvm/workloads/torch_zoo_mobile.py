"""Zoo part 3: mobile / efficient ImageNet CNNs in plain torch (depthwise and grouped convs, SE gates,
hardswish, SiLU, channel shuffle) and ConvNeXt-T. All on 224x224 images, settings from the papers /
torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .torch_zoo_cnn import SqueezeExcite, _image, conv_bn


def _divisible(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of `divisor`, never below 90% of v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class MBConv(nn.Module):
    """Inverted residual: optional 1x1 expand, kxk depthwise, optional SE, linear 1x1 project."""

    def __init__(self, in_ch, exp, out_ch, kernel, stride, act, se_ch: int = 0, se_act=nn.ReLU, se_gate=nn.Sigmoid):
        super().__init__()
        layers = [conv_bn(in_ch, exp, 1, act=act)] if exp != in_ch else []
        layers.append(conv_bn(exp, exp, kernel, stride, groups=exp, act=act))
        if se_ch:
            layers.append(SqueezeExcite(exp, se_ch, se_act, se_gate))
        layers.append(conv_bn(exp, out_ch, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def _mobilenet_v3(settings, last_conv: int, hidden: int):
    layers, in_ch = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)], 16
    for k, exp, out, se, hs, s in settings:
        act = nn.Hardswish if hs else nn.ReLU
        layers.append(MBConv(in_ch, exp, out, k, s, act, _divisible(exp // 4) if se else 0, nn.ReLU, nn.Hardsigmoid))
        in_ch = out
    layers += [conv_bn(in_ch, last_conv, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(last_conv, hidden), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden, 1000)]
    return nn.Sequential(*layers)


def mobilenet_v3_large(batch_size: int):
    """MobileNetV3-Large 1.0 (hardswish, hardsigmoid SE gates, 3x3/5x5 depthwise), 224x224 image."""
    s = [(3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2), (5, 120, 40, 1, 0, 1),
         (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1),
         (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1), (5, 672, 160, 1, 1, 2),
         (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1)]
    return _mobilenet_v3(s, 960, 1280), _image(batch_size)


def mobilenet_v3_small(batch_size: int):
    """MobileNetV3-Small 1.0 (hardswish, hardsigmoid SE gates, 3x3/5x5 depthwise), 224x224 image."""
    s = [(3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2), (5, 240, 40, 1, 1, 1),
         (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1), (5, 288, 96, 1, 1, 2),
         (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1)]
    return _mobilenet_v3(s, 576, 1024), _image(batch_size)


def efficientnet_b0(batch_size: int):
    """EfficientNet-B0: MBConv blocks with SiLU and SE (squeeze = input channels / 4), 3x3/5x5
    depthwise, 1280-channel head, 224x224 image."""
    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    layers, in_ch = [conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
    for expand, k, s, out, n in stages:
        for i in range(n):
            layers.append(MBConv(in_ch, in_ch * expand, out, k, s if i == 0 else 1, nn.SiLU, max(1, in_ch // 4), nn.SiLU))
            in_ch = out
    layers += [conv_bn(320, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
               nn.Linear(1280, 1000)]
    return nn.Sequential(*layers), _image(batch_size)


def mnasnet1_0(batch_size: int):
    """MNASNet 1.0 (torchvision): ReLU inverted residuals with 3x3/5x5 depthwise, no SE, 224x224 image."""
    layers = [conv_bn(3, 32, 3, 2), conv_bn(32, 32, 3, groups=32), conv_bn(32, 16, 1, act=None)]
    in_ch = 16
    for out, k, s, expand, n in [(24, 3, 2, 3, 3), (40, 5, 2, 3, 3), (80, 5, 2, 6, 3), (96, 3, 1, 6, 2),
                                 (192, 5, 2, 6, 4), (320, 3, 1, 6, 1)]:
        for i in range(n):
            layers.append(MBConv(in_ch, in_ch * expand, out, k, s if i == 0 else 1, nn.ReLU))
            in_ch = out
    layers += [conv_bn(320, 1280, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers), _image(batch_size)


# ----------------------------------------------------------------------------- ShuffleNetV2


def channel_shuffle(x, groups: int = 2):
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride, mid = stride, out_ch // 2
        branch_in = in_ch if stride > 1 else in_ch // 2
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(in_ch, in_ch, 3, stride, groups=in_ch, act=None), conv_bn(in_ch, mid, 1))
        self.branch2 = nn.Sequential(conv_bn(branch_in, mid, 1), conv_bn(mid, mid, 3, stride, groups=mid, act=None),
                                     conv_bn(mid, mid, 1))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat([x1, self.branch2(x2)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out)


def shufflenet_v2(batch_size: int):
    """ShuffleNetV2 1.0x: channel split, depthwise 3x3, concat + channel shuffle (reshape/transpose),
    stages 116/232/464, 224x224 image."""
    layers, in_ch = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for out, n in [(116, 4), (232, 8), (464, 4)]:
        for i in range(n):
            layers.append(ShuffleUnit(in_ch, out, 2 if i == 0 else 1))
            in_ch = out
    layers += [conv_bn(464, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000)]
    return nn.Sequential(*layers), _image(batch_size)


# ----------------------------------------------------------------------------- RegNetY


class RegNetYBlock(nn.Module):
    """RegNetY bottleneck (ratio 1): 1x1, grouped 3x3 (group width 8) with stride, SE (0.25 of the input
    width), 1x1, residual."""

    def __init__(self, in_ch: int, width: int, stride: int, group_width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_ch, width, 1), conv_bn(width, width, 3, stride, groups=width // group_width),
            SqueezeExcite(width, round(0.25 * in_ch)), conv_bn(width, width, 1, act=None),
        )
        self.shortcut = nn.Identity() if stride == 1 and in_ch == width else conv_bn(in_ch, width, 1, stride, act=None)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def regnety_400mf(batch_size: int):
    """RegNetY-400MF: depths 1/3/6/6, widths 48/104/208/440, group width 8, SE, 224x224 image."""
    layers, in_ch = [conv_bn(3, 32, 3, 2)], 32
    for width, n in [(48, 1), (104, 3), (208, 6), (440, 6)]:
        for i in range(n):
            layers.append(RegNetYBlock(in_ch, width, 2 if i == 0 else 1))
            in_ch = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(440, 1000)]
    return nn.Sequential(*layers), _image(batch_size)


# ----------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (permute to channels-last and back)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv, channels-last LayerNorm, Linear 4x + GELU + Linear, layer scale, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


def convnext_tiny(batch_size: int):
    """ConvNeXt-T (dims 96/192/384/768, depths 3/3/9/3), 4x4/4 patchify stem, 224x224 image."""
    dims, depths = [96, 192, 384, 768], [3, 3, 9, 3]
    layers = [nn.Conv2d(3, 96, 4, 4), LayerNorm2d(96, eps=1e-6)]
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        if i > 0:
            layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(768, eps=1e-6), nn.Linear(768, 1000)]
    return nn.Sequential(*layers), _image(batch_size)


BUILDERS = {f.__name__: f for f in (mobilenet_v3_large, mobilenet_v3_small, efficientnet_b0, mnasnet1_0,
                                     shufflenet_v2, regnety_400mf, convnext_tiny)}
