"""Zoo part 4: dense prediction, detection, video, audio and 1D networks in plain torch.

Segmentation (U-Net, DeepLabV3), detection (RetinaNet-style FPN + heads, Tiny-YOLOv2; raw head
outputs, no box decoding or NMS), an autoencoder, video (C3D, R(2+1)D), audio (VGGish, DS-CNN
keyword spotting) and WaveNet (dilated causal conv1d). Non-square and non-224 inputs on purpose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .torch_zoo_cnn import _image, conv_bn

# ----------------------------------------------------------------------------- U-Net


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(in_ch, out_ch, 3), conv_bn(out_ch, out_ch, 3))


class UNet(nn.Module):
    def __init__(self, in_ch: int = 3, classes: int = 2, base: int = 32, levels: int = 4):
        super().__init__()
        chs = [base * 2**i for i in range(levels + 1)]
        self.inc = _double_conv(in_ch, chs[0])
        self.downs = nn.ModuleList(_double_conv(chs[i], chs[i + 1]) for i in range(levels))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(chs[i + 1], chs[i], 2, 2) for i in reversed(range(levels)))
        self.up_convs = nn.ModuleList(_double_conv(2 * chs[i], chs[i]) for i in reversed(range(levels)))
        self.out = nn.Conv2d(chs[0], classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            x = conv(torch.cat([skips.pop(), up(x)], 1))
        return self.out(x)


def unet(batch_size: int):
    """U-Net (4 levels, base 32 channels: 32..512), double 3x3 conv + BN + ReLU, 2x2 max pool down,
    2x2/2 transposed conv up, skip concatenation, 2 classes, 128x128 image."""
    return UNet(), _image(batch_size, 128)


# ----------------------------------------------------------------------------- DeepLabV3


class DilatedBlock(nn.Module):
    def __init__(self, in_ch: int, ch: int, stride: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_ch, ch, 3, stride, dilation=dilation),
                                  conv_bn(ch, ch, 3, dilation=dilation, act=None))
        self.shortcut = nn.Identity() if stride == 1 and in_ch == ch else conv_bn(in_ch, ch, 1, stride, act=None)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class DeepLabV3(nn.Module):
    def __init__(self, classes: int = 21):
        super().__init__()
        # ResNet-18 body at output stride 16: the last stage keeps the resolution and dilates by 2.
        layers, in_ch = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
        for i, (stride, dilation) in enumerate([(1, 1), (2, 1), (2, 1), (1, 2)]):
            for j in range(2):
                layers.append(DilatedBlock(in_ch, 64 * 2**i, stride if j == 0 else 1, dilation))
                in_ch = 64 * 2**i
        self.backbone = nn.Sequential(*layers)
        self.aspp = nn.ModuleList([conv_bn(512, 256, 1)] + [conv_bn(512, 256, 3, dilation=r) for r in (6, 12, 18)])
        self.image_pool = conv_bn(512, 256, 1)
        self.project = conv_bn(5 * 256, 256, 1)
        self.head = nn.Sequential(conv_bn(256, 256, 3), nn.Conv2d(256, classes, 1))

    def forward(self, img):
        x = self.backbone(img)
        pooled = self.image_pool(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, x.shape[2], x.shape[3])
        x = self.project(torch.cat([branch(x) for branch in self.aspp] + [pooled], 1))
        return F.interpolate(self.head(x), size=img.shape[2:], mode="bilinear", align_corners=False)


def deeplabv3(batch_size: int):
    """DeepLabV3 with a dilated ResNet-18 backbone (output stride 16), ASPP (1x1, 3x3 at rates 6/12/18,
    image pooling), 21 classes, bilinear upsampling to a 320x320 image. The image-pooling branch is
    broadcast with expand (the exact result of upsampling a 1x1 map)."""
    return DeepLabV3(), _image(batch_size, 320)


# ----------------------------------------------------------------------------- RetinaNet-style detector


class RetinaNetFPN(nn.Module):
    def __init__(self, classes: int = 80, anchors: int = 9, ch: int = 256):
        super().__init__()
        layers, in_ch, self.stages = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64, nn.ModuleList()
        for i in range(4):
            blocks = [DilatedBlock(in_ch if j == 0 else 64 * 2**i, 64 * 2**i, 2 if (i > 0 and j == 0) else 1, 1)
                      for j in range(2)]
            self.stages.append(nn.Sequential(*(layers if i == 0 else []), *blocks))
            in_ch = 64 * 2**i
        self.lateral = nn.ModuleList(nn.Conv2d(c, ch, 1) for c in (128, 256, 512))
        self.smooth = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1) for _ in range(3))
        self.p6, self.p7 = nn.Conv2d(512, ch, 3, 2, 1), nn.Conv2d(ch, ch, 3, 2, 1)

        def head(out):
            return nn.Sequential(*[m for _ in range(4) for m in (nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU())],
                                 nn.Conv2d(ch, out, 3, padding=1))

        self.cls_head, self.box_head = head(anchors * classes), head(anchors * 4)

    def forward(self, img):
        c2 = self.stages[0](img)
        c3 = self.stages[1](c2)
        c4 = self.stages[2](c3)
        c5 = self.stages[3](c4)
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        p6 = self.p6(c5)
        levels = [self.smooth[0](p3), self.smooth[1](p4), self.smooth[2](p5), p6, self.p7(F.relu(p6))]
        cls = torch.cat([self.cls_head(p).flatten(2) for p in levels], 2)
        box = torch.cat([self.box_head(p).flatten(2) for p in levels], 2)
        return torch.sigmoid(cls), box


def retinanet_fpn(batch_size: int):
    """RetinaNet-style detector: ResNet-18 backbone, FPN P3-P7 (256 ch, nearest 2x upsampling),
    shared 4-conv class (9 anchors x 80) and box heads on all five levels, 320x320 image; raw
    outputs, no anchor decoding or NMS."""
    return RetinaNetFPN(), _image(batch_size, 320)


def tiny_yolov2(batch_size: int):
    """Tiny-YOLOv2 (VOC): 3x3 conv + BN + LeakyReLU(0.1) with 2x2 max pools, 416x416 image, 13x13x125
    output. Darknet's 'same'-padded stride-1 max pool is a right/bottom zero pad + 2x2 stride-1 pool
    (inputs after LeakyReLU can be negative, so this differs from -inf padding only at the border)."""
    act = lambda: nn.LeakyReLU(0.1)
    layers, in_ch = [], 3
    for i, ch in enumerate([16, 32, 64, 128, 256, 512]):
        layers += [conv_bn(in_ch, ch, 3, act=act)]
        layers += [nn.MaxPool2d(2, 2)] if i < 5 else [nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, 1)]
        in_ch = ch
    layers += [conv_bn(512, 1024, 3, act=act), conv_bn(1024, 1024, 3, act=act), nn.Conv2d(1024, 125, 1)]
    return nn.Sequential(*layers), _image(batch_size, 416)


def conv_autoencoder(batch_size: int):
    """Convolutional autoencoder on a 96x96 RGB image: four 3x3/2 conv + ELU down to 6x6x256, a 256-d
    linear bottleneck, four 3x3/2 transposed convs (output_padding 1) + ELU back up, sigmoid output."""
    chs = [3, 32, 64, 128, 256]
    enc = [m for i in range(4) for m in (nn.Conv2d(chs[i], chs[i + 1], 3, 2, 1), nn.ELU())]
    dec = []
    for i in reversed(range(4)):
        dec += [nn.ConvTranspose2d(chs[i + 1], chs[i], 3, 2, 1, output_padding=1), nn.ELU() if i else nn.Sigmoid()]
    model = nn.Sequential(*enc, nn.Flatten(), nn.Linear(256 * 36, 256), nn.ELU(), nn.Linear(256, 256 * 36),
                          nn.Unflatten(1, (256, 6, 6)), *dec)
    return model, _image(batch_size, 96)


# ----------------------------------------------------------------------------- Video


def c3d(batch_size: int):
    """C3D (Tran et al.): eight 3x3x3 conv3d + ReLU, 1x2x2 then 2x2x2 max pools, 8192-4096-4096-487,
    on a 16-frame 112x112 clip (the paper's input)."""
    def conv(i, o):
        return [nn.Conv3d(i, o, 3, padding=1), nn.ReLU(True)]

    model = nn.Sequential(
        *conv(3, 64), nn.MaxPool3d((1, 2, 2)), *conv(64, 128), nn.MaxPool3d(2),
        *conv(128, 256), *conv(256, 256), nn.MaxPool3d(2), *conv(256, 512), *conv(512, 512), nn.MaxPool3d(2),
        *conv(512, 512), *conv(512, 512), nn.MaxPool3d(2, padding=(0, 1, 1)),  # 512 x 1 x 4 x 4
        nn.Flatten(), nn.Linear(8192, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True),
        nn.Linear(4096, 487),
    )
    return model, (torch.randn(batch_size, 3, 16, 112, 112),)


def _conv3d_bn(in_ch, out_ch, kernel, stride, padding, relu=True):
    return nn.Sequential(nn.Conv3d(in_ch, out_ch, kernel, stride, padding, bias=False), nn.BatchNorm3d(out_ch),
                         *([nn.ReLU(True)] if relu else []))


def _conv2plus1d(in_ch, out_ch, stride, relu_out):
    mid = (in_ch * out_ch * 27) // (in_ch * 9 + 3 * out_ch)  # parameter-matched to a full 3x3x3 conv
    return nn.Sequential(_conv3d_bn(in_ch, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1)),
                         _conv3d_bn(mid, out_ch, (3, 1, 1), (stride, 1, 1), (1, 0, 0), relu_out))


class R2Plus1DBlock(nn.Module):
    def __init__(self, in_ch: int, ch: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(_conv2plus1d(in_ch, ch, stride, True), _conv2plus1d(ch, ch, 1, False))
        self.shortcut = (nn.Identity() if stride == 1 and in_ch == ch
                         else _conv3d_bn(in_ch, ch, 1, stride, 0, relu=False))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def r2plus1d_18(batch_size: int):
    """R(2+1)D-18: every 3x3x3 conv factorized into 1x3x3 spatial + 3x1x1 temporal (parameter-matched
    mid channels), 8-frame 112x112 clip, 400 classes."""
    layers = [_conv3d_bn(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3)), _conv3d_bn(45, 64, (3, 1, 1), 1, (1, 0, 0))]
    in_ch = 64
    for i in range(4):
        for j in range(2):
            layers.append(R2Plus1DBlock(in_ch, 64 * 2**i, 2 if (i > 0 and j == 0) else 1))
            in_ch = 64 * 2**i
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(512, 400))
    return model, (torch.randn(batch_size, 3, 8, 112, 112),)


# ----------------------------------------------------------------------------- Audio and 1D


def vggish(batch_size: int):
    """VGGish audio embedding: VGG-like 3x3 convs on a 96x64 log-mel patch (non-square, 1 channel),
    12288-4096-4096-128 MLP."""
    layers, in_ch = [], 1
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(True)]
            in_ch = v
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 6 * 4, 4096), nn.ReLU(True),
                          nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128))
    return model, (torch.randn(batch_size, 1, 96, 64),)


def kws_dscnn(batch_size: int):
    """DS-CNN-L keyword spotting (Hello Edge): 10x4 conv (stride 2x1) to 276 channels, five depthwise
    3x3 + pointwise 1x1 pairs, global average pool, 12 classes, on 49x10 MFCC features."""
    layers = [conv_bn(1, 276, (10, 4), (2, 1), (5, 1))]
    for _ in range(5):
        layers += [conv_bn(276, 276, 3, groups=276), conv_bn(276, 276, 1)]
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(276, 12))
    return model, (torch.randn(batch_size, 1, 49, 10),)


class WaveNet(nn.Module):
    """Gated residual stack of dilated causal conv1d (left zero pad of `dilation`, kernel 2)."""

    def __init__(self, res: int = 64, skip: int = 128, classes: int = 256, dilations=tuple(2**i for i in range(10)) * 2):
        super().__init__()
        self.dilations = dilations
        self.causal = nn.Conv1d(1, res, 2)
        self.filters = nn.ModuleList(nn.Conv1d(res, 2 * res, 2, dilation=d) for d in dilations)
        self.res = nn.ModuleList(nn.Conv1d(res, res, 1) for _ in dilations)
        self.skip = nn.ModuleList(nn.Conv1d(res, skip, 1) for _ in dilations)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(skip, skip, 1), nn.ReLU(), nn.Conv1d(skip, classes, 1))

    def forward(self, audio):
        x, skips = self.causal(F.pad(audio, (1, 0))), 0
        for d, conv, res, skip in zip(self.dilations, self.filters, self.res, self.skip):
            a, b = conv(F.pad(x, (d, 0))).chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            x, skips = x + res(z), skips + skip(z)
        return self.out(skips)


def wavenet(batch_size: int):
    """WaveNet: 2 stacks of dilations 1..512 (kernel 2, causal), 64 residual / 128 skip channels,
    tanh x sigmoid gates, 256-way output, on 4096 audio samples."""
    return WaveNet(), (torch.randn(batch_size, 1, 4096),)


BUILDERS = {f.__name__: f for f in (unet, deeplabv3, retinanet_fpn, tiny_yolov2, conv_autoencoder, c3d, r2plus1d_18,
                                     vggish, kws_dscnn, wavenet)}
