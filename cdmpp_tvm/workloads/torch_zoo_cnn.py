"""Zoo part 1: classic ImageNet / CIFAR classification CNNs in plain torch (no torchvision).

Layer settings follow the torchvision / paper definitions; weights are random (torch_models.build
seeds them). Every builder takes the batch size and returns (model, example input tuple); build()
puts the model in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(in_ch: int, out_ch: int, kernel, stride=1, padding=None, groups: int = 1, act=nn.ReLU,
            dilation: int = 1, eps: float = 1e-5) -> nn.Sequential:
    """Conv2d (no bias) + BatchNorm2d + activation (`act=None` for none); padding defaults to 'same'."""
    if padding is None:
        padding = tuple(dilation * (k // 2) for k in kernel) if isinstance(kernel, tuple) else dilation * (kernel // 2)
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
              nn.BatchNorm2d(out_ch, eps=eps)]
    return nn.Sequential(*layers, *([act()] if act is not None else []))


def _image(batch_size: int, size: int = 224, channels: int = 3):
    return (torch.randn(batch_size, channels, size, size),)


# ----------------------------------------------------------------------------- VGG, AlexNet


def _vgg(cfg: list, batch_norm: bool, spatial: int, num_classes: int = 1000) -> nn.Sequential:
    layers, in_ch = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1)] + ([nn.BatchNorm2d(v)] if batch_norm else []) + [nn.ReLU(True)]
            in_ch = v
    return nn.Sequential(
        *layers, nn.Flatten(),
        nn.Linear(512 * spatial * spatial, 4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes),
    )


def vgg11(batch_size: int):
    """VGG-11 (configuration A, no BatchNorm), 224x224 image, 25088-4096-4096-1000 classifier."""
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    return _vgg(cfg, batch_norm=False, spatial=7), _image(batch_size)


def vgg16_bn(batch_size: int):
    """VGG-16 with BatchNorm (configuration D) on a 160x160 image (feature maps 160..10, 5x5x512 into
    the classifier instead of 7x7x512, so the first FC is 12800-4096)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    return _vgg(cfg, batch_norm=True, spatial=5), _image(batch_size, 160)


def alexnet(batch_size: int):
    """AlexNet (torchvision's one-GPU variant): 11x11/4, 5x5, three 3x3 convs, 9216-4096-4096-1000, 224x224."""
    model = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2),  # 256 x 6 x 6
        nn.Flatten(), nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(True),
        nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 1000),
    )
    return model, _image(batch_size)


# ----------------------------------------------------------------------------- SqueezeNet


class Fire(nn.Module):
    def __init__(self, in_ch: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Conv2d(in_ch, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, expand, 1), nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


def squeezenet1_1(batch_size: int):
    """SqueezeNet 1.1: Fire modules (1x1 squeeze, 1x1 + 3x3 expand, concat), ceil-mode max pools,
    conv classifier + global average pool, 224x224 image."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(True), pool(), Fire(64, 16, 64), Fire(128, 16, 64), pool(),
        Fire(128, 32, 128), Fire(256, 32, 128), pool(),
        Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256), Fire(512, 64, 256),
        nn.Dropout(), nn.Conv2d(512, 1000, 1), nn.ReLU(True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return model, _image(batch_size)


# ----------------------------------------------------------------------------- DenseNet


class DenseLayer(nn.Module):
    def __init__(self, in_ch: int, growth: int = 32, bn_size: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch), nn.ReLU(True), nn.Conv2d(in_ch, bn_size * growth, 1, bias=False),
            nn.BatchNorm2d(bn_size * growth), nn.ReLU(True), nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, features: list):
        return self.body(torch.cat(features, 1))


class DenseNet(nn.Module):
    def __init__(self, blocks=(6, 12, 24, 16), growth: int = 32, init: int = 64, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init), nn.ReLU(True),
                                  nn.MaxPool2d(3, 2, 1))
        self.blocks, self.transitions, ch = nn.ModuleList(), nn.ModuleList(), init
        for i, n in enumerate(blocks):
            self.blocks.append(nn.ModuleList(DenseLayer(ch + j * growth, growth) for j in range(n)))
            ch += n * growth
            if i != len(blocks) - 1:
                self.transitions.append(nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(True),
                                                      nn.Conv2d(ch, ch // 2, 1, bias=False), nn.AvgPool2d(2, 2)))
                ch //= 2
        self.norm, self.fc = nn.BatchNorm2d(ch), nn.Linear(ch, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            features = [x]
            for layer in block:
                features.append(layer(features))
            x = torch.cat(features, 1)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        x = F.adaptive_avg_pool2d(F.relu(self.norm(x)), 1)
        return self.fc(torch.flatten(x, 1))


def densenet121(batch_size: int):
    """DenseNet-121 (growth 32, blocks 6/12/24/16, BN-ReLU-conv pre-activation, concatenation of all
    earlier feature maps before every layer), 224x224 image. Every dense layer has its own input
    channel count, so most of its tasks are distinct."""
    return DenseNet(), _image(batch_size)


# ----------------------------------------------------------------------------- ResNeXt, Wide-ResNet, SE-ResNet


class GroupedBottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 reduce to `width`, grouped 3x3 with the stride, 1x1 expand to `out_ch`."""

    def __init__(self, in_ch: int, width: int, out_ch: int, stride: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_ch, width, 1), conv_bn(width, width, 3, stride, groups=groups),
                                  conv_bn(width, out_ch, 1, act=None))
        self.shortcut = (nn.Identity() if stride == 1 and in_ch == out_ch
                         else conv_bn(in_ch, out_ch, 1, stride, act=None))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def resnext50_32x4d(batch_size: int):
    """ResNeXt-50 32x4d: ResNet-50 layout with 32-group 3x3 convs (widths 128/256/512/1024), 224x224."""
    layers, in_ch = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for i, n in enumerate([3, 4, 6, 3]):
        for j in range(n):
            out_ch = 256 * 2**i
            layers.append(GroupedBottleneck(in_ch, 128 * 2**i, out_ch, 2 if (i > 0 and j == 0) else 1, 32))
            in_ch = out_ch
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))
    return model, _image(batch_size)


class WideBlock(nn.Module):
    """Pre-activation wide basic block (BN-ReLU-conv3x3 twice, 1x1 projection on shape change)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_ch), nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(out_ch), nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = None if stride == 1 and in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.shortcut is None else self.shortcut(o))


def wide_resnet28_10(batch_size: int):
    """WRN-28-10 for CIFAR (32x32 image, widths 160/320/640, 4 pre-activation blocks per group, 10 classes)."""
    layers, in_ch = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for i, width in enumerate([160, 320, 640]):
        for j in range(4):
            layers.append(WideBlock(in_ch, width, 2 if (i > 0 and j == 0) else 1))
            in_ch = width
    model = nn.Sequential(*layers, nn.BatchNorm2d(640), nn.ReLU(True), nn.AvgPool2d(8), nn.Flatten(), nn.Linear(640, 10))
    return model, _image(batch_size, 32)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average pool, 1x1 reduce, activation, 1x1 expand, gate, scale."""

    def __init__(self, ch: int, squeeze: int, act=nn.ReLU, gate=nn.Sigmoid):
        super().__init__()
        self.fc1, self.act, self.fc2, self.gate = nn.Conv2d(ch, squeeze, 1), act(), nn.Conv2d(squeeze, ch, 1), gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class SEBasicBlock(nn.Module):
    def __init__(self, in_ch: int, ch: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_ch, ch, 3, stride), conv_bn(ch, ch, 3, act=None), SqueezeExcite(ch, ch // 16))
        self.shortcut = nn.Identity() if stride == 1 and in_ch == ch else conv_bn(in_ch, ch, 1, stride, act=None)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def se_resnet18(batch_size: int):
    """SE-ResNet-18: ResNet-18 with a squeeze-excite gate (reduction 16) on every basic block, 224x224."""
    layers, in_ch = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for i in range(4):
        for j in range(2):
            layers.append(SEBasicBlock(in_ch, 64 * 2**i, 2 if (i > 0 and j == 0) else 1))
            in_ch = 64 * 2**i
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))
    return model, _image(batch_size)


BUILDERS = {f.__name__: f for f in (vgg11, vgg16_bn, alexnet, squeezenet1_1, densenet121, resnext50_32x4d,
                                     wide_resnet28_10, se_resnet18)}
