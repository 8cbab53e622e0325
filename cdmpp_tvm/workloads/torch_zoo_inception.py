"""Zoo part 2: multi-branch Inception networks (GoogLeNet, Inception-v3) in plain torch.

Every Inception module has its own channel split, so these two networks hold many distinct conv
shapes (1x1, 3x3, 5x5, 1x7/7x1, 1x3/3x1) and concatenations.
"""

from __future__ import annotations

import torch
from torch import nn

from .torch_zoo_cnn import _image, conv_bn


class InceptionV1(nn.Module):
    """GoogLeNet module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 max pool->1x1, concatenated."""

    def __init__(self, in_ch, c1, c3r, c3, c5r, c5, pool_proj):
        super().__init__()
        self.b1 = conv_bn(in_ch, c1, 1, eps=1e-3)
        self.b2 = nn.Sequential(conv_bn(in_ch, c3r, 1, eps=1e-3), conv_bn(c3r, c3, 3, eps=1e-3))
        self.b3 = nn.Sequential(conv_bn(in_ch, c5r, 1, eps=1e-3), conv_bn(c5r, c5, 5, eps=1e-3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv_bn(in_ch, pool_proj, 1, eps=1e-3))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def googlenet(batch_size: int):
    """GoogLeNet / Inception-v1 with BatchNorm (torchvision layout, but 5x5 convs in the 5x5 branch as in
    the paper), nine Inception modules, ceil-mode max pools, 224x224 image; no auxiliary heads."""
    pool = lambda k=3: nn.MaxPool2d(k, 2, ceil_mode=True)
    model = nn.Sequential(
        conv_bn(3, 64, 7, 2, eps=1e-3), pool(), conv_bn(64, 64, 1, eps=1e-3), conv_bn(64, 192, 3, eps=1e-3), pool(),
        InceptionV1(192, 64, 96, 128, 16, 32, 32), InceptionV1(256, 128, 128, 192, 32, 96, 64), pool(),
        InceptionV1(480, 192, 96, 208, 16, 48, 64), InceptionV1(512, 160, 112, 224, 24, 64, 64),
        InceptionV1(512, 128, 128, 256, 24, 64, 64), InceptionV1(512, 112, 144, 288, 32, 64, 64),
        InceptionV1(528, 256, 160, 320, 32, 128, 128), pool(2),
        InceptionV1(832, 256, 160, 320, 32, 128, 128), InceptionV1(832, 384, 192, 384, 48, 128, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1024, 1000),
    )
    return model, _image(batch_size)


def _c(in_ch, out_ch, kernel, stride=1, padding=None):
    """Inception-v3 BasicConv2d: conv (no bias) + BN(eps 1e-3) + ReLU; 'valid' padding unless given."""
    return conv_bn(in_ch, out_ch, kernel, stride, 0 if padding is None else padding, eps=1e-3)


def _avg_pool_branch(in_ch, out_ch):
    return nn.Sequential(nn.AvgPool2d(3, 1, 1), _c(in_ch, out_ch, 1))


class Branches(nn.Module):
    """Runs branches on the same input and concatenates their outputs on channels."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class SplitConv(nn.Module):
    """Inception-v3 E-block tail: a 1x3 and a 3x1 conv on the same input, concatenated."""

    def __init__(self, ch):
        super().__init__()
        self.a, self.b = _c(ch, 384, (1, 3), padding=(0, 1)), _c(ch, 384, (3, 1), padding=(1, 0))

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def _inception_a(in_ch, pool_features):
    return Branches(
        _c(in_ch, 64, 1),
        nn.Sequential(_c(in_ch, 48, 1), _c(48, 64, 5, padding=2)),
        nn.Sequential(_c(in_ch, 64, 1), _c(64, 96, 3, padding=1), _c(96, 96, 3, padding=1)),
        _avg_pool_branch(in_ch, pool_features),
    )


def _inception_b(in_ch):
    return Branches(
        _c(in_ch, 384, 3, 2),
        nn.Sequential(_c(in_ch, 64, 1), _c(64, 96, 3, padding=1), _c(96, 96, 3, 2)),
        nn.MaxPool2d(3, 2),
    )


def _inception_c(in_ch, c7):
    p17, p71 = (0, 3), (3, 0)
    return Branches(
        _c(in_ch, 192, 1),
        nn.Sequential(_c(in_ch, c7, 1), _c(c7, c7, (1, 7), padding=p17), _c(c7, 192, (7, 1), padding=p71)),
        nn.Sequential(_c(in_ch, c7, 1), _c(c7, c7, (7, 1), padding=p71), _c(c7, c7, (1, 7), padding=p17),
                      _c(c7, c7, (7, 1), padding=p71), _c(c7, 192, (1, 7), padding=p17)),
        _avg_pool_branch(in_ch, 192),
    )


def _inception_d(in_ch):
    return Branches(
        nn.Sequential(_c(in_ch, 192, 1), _c(192, 320, 3, 2)),
        nn.Sequential(_c(in_ch, 192, 1), _c(192, 192, (1, 7), padding=(0, 3)), _c(192, 192, (7, 1), padding=(3, 0)),
                      _c(192, 192, 3, 2)),
        nn.MaxPool2d(3, 2),
    )


def _inception_e(in_ch):
    return Branches(
        _c(in_ch, 320, 1),
        nn.Sequential(_c(in_ch, 384, 1), SplitConv(384)),
        nn.Sequential(_c(in_ch, 448, 1), _c(448, 384, 3, padding=1), SplitConv(384)),
        _avg_pool_branch(in_ch, 192),
    )


def inception_v3(batch_size: int):
    """Inception-v3 (torchvision layout, no auxiliary head), 299x299 image: 35x35 A-blocks, 17x17
    C-blocks with factorized 1x7/7x1 convs, 8x8 E-blocks with 1x3/3x1 splits, grid reductions."""
    model = nn.Sequential(
        _c(3, 32, 3, 2), _c(32, 32, 3), _c(32, 64, 3, padding=1), nn.MaxPool2d(3, 2),
        _c(64, 80, 1), _c(80, 192, 3), nn.MaxPool2d(3, 2),
        _inception_a(192, 32), _inception_a(256, 64), _inception_a(288, 64), _inception_b(288),
        _inception_c(768, 128), _inception_c(768, 160), _inception_c(768, 160), _inception_c(768, 192),
        _inception_d(768), _inception_e(1280), _inception_e(2048),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(2048, 1000),
    )
    return model, _image(batch_size, 299)


BUILDERS = {f.__name__: f for f in (googlenet, inception_v3)}
