"""Whole-network workloads: torch model -> torch.export -> Relax -> MetaSchedule tasks.

torch is imported only inside the functions that need it (through torch_models), so importing this
module is cheap and torch-free.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from ..errors import UserError
from .task import Task

# Names and one-line descriptions; the torch definitions live in torch_models.BUILDERS under the same names.
NETWORKS: dict[str, str] = {
    "resnet18": "ResNet-18, 224x224 image",
    "resnet50": "ResNet-50, 224x224 image",
    "mobilenet_v2": "MobileNetV2 1.0, 224x224 image",
    "bert_base_layer": "one BERT-base encoder layer, seq 128, hidden 768, 12 heads, FFN 3072",
    "vit_b16_layer": "ViT-B/16 patch embedding + one encoder layer + head, 224x224 image (197 tokens)",
    "lstm": "2-layer LSTM, hidden 256, 32 steps, unrolled by hand",
    "dcgan_generator": "DCGAN generator, 100-d noise -> 64x64 image (transposed convs)",
    "resnet3d_18": "R3D-18 video ResNet, 8x112x112 clip (3D convs)",
    # The network zoo (torch_zoo*.py): more architectures and shapes, for more distinct tasks.
    "vgg11": "VGG-11 (no BN), 224x224 image",
    "vgg16_bn": "VGG-16 with BatchNorm, 160x160 image",
    "alexnet": "AlexNet (11x11/4 and 5x5 convs), 224x224 image",
    "squeezenet1_1": "SqueezeNet 1.1 (Fire modules, ceil-mode pools), 224x224 image",
    "densenet121": "DenseNet-121 (dense concatenation, BN-ReLU-conv), 224x224 image",
    "resnext50_32x4d": "ResNeXt-50 32x4d (32-group 3x3 convs), 224x224 image",
    "wide_resnet28_10": "WRN-28-10 (pre-activation, widths 160/320/640), 32x32 CIFAR image",
    "se_resnet18": "SE-ResNet-18 (squeeze-excite on every block), 224x224 image",
    "googlenet": "GoogLeNet / Inception-v1 with BN (1x1/3x3/5x5/pool branches), 224x224 image",
    "inception_v3": "Inception-v3 (1x7/7x1 and 1x3/3x1 factorized convs), 299x299 image",
    "mobilenet_v3_large": "MobileNetV3-Large (hardswish, SE), 224x224 image",
    "mobilenet_v3_small": "MobileNetV3-Small (hardswish, SE), 224x224 image",
    "efficientnet_b0": "EfficientNet-B0 (MBConv, SiLU, SE, 3x3/5x5 depthwise), 224x224 image",
    "mnasnet1_0": "MNASNet 1.0 (3x3/5x5 depthwise inverted residuals), 224x224 image",
    "shufflenet_v2": "ShuffleNetV2 1.0x (channel split and shuffle), 224x224 image",
    "regnety_400mf": "RegNetY-400MF (group width 8 convs, SE), 224x224 image",
    "convnext_tiny": "ConvNeXt-T (7x7 depthwise, channels-last LayerNorm, GELU), 224x224 image",
    "unet": "U-Net, 4 levels from 32 channels (transposed convs, skip concat), 128x128 image",
    "deeplabv3": "DeepLabV3, dilated ResNet-18 + ASPP (rates 6/12/18), bilinear upsampling, 320x320 image",
    "retinanet_fpn": "RetinaNet-style detector: ResNet-18 + FPN P3-P7 + class/box heads, 320x320 image, no NMS",
    "tiny_yolov2": "Tiny-YOLOv2 VOC (LeakyReLU, 13x13x125 output), 416x416 image",
    "conv_autoencoder": "conv autoencoder (stride-2 convs, ELU, transposed convs), 96x96 image",
    "c3d": "C3D video net (3x3x3 conv3d), 16x112x112 clip",
    "r2plus1d_18": "R(2+1)D-18 video ResNet (1x3x3 + 3x1x1 convs), 8x112x112 clip",
    "vggish": "VGGish audio embedding, 96x64 log-mel patch",
    "kws_dscnn": "DS-CNN-L keyword spotting (depthwise-separable), 49x10 MFCC",
    "wavenet": "WaveNet, 2x10 dilated causal conv1d layers with gates, 4096 samples",
    "gpt2_block_seq64": "one GPT-2 decoder block (pre-LN, causal), seq 64, hidden 768",
    "gpt2_block_seq256": "one GPT-2 decoder block (pre-LN, causal), seq 256, hidden 768",
    "t5_small_layer": "one T5-small encoder layer (RMSNorm, position bias, ReLU FFN), seq 256, hidden 512",
    "bert_large_layer": "one BERT-large encoder layer, seq 128, hidden 1024, 16 heads, FFN 4096",
    "distilbert_layer_seq384": "one DistilBERT encoder layer, seq 384, hidden 768, 12 heads",
    "llama_block_seq128": "one TinyLlama decoder block (RMSNorm, RoPE, GQA 32/4, SwiGLU), seq 128, hidden 2048",
    "deit_tiny": "DeiT-Ti, 12 layers, hidden 192, 224x224 image (197 tokens)",
    "whisper_tiny_encoder": "Whisper-tiny audio encoder (conv1d stem, 4 layers, 1500 tokens), 80x3000 log-mel",
    "mlp_mixer_s16": "MLP-Mixer S/16, 8 layers, 224x224 image (196 tokens)",
    "gru": "2-layer GRU, input 128, hidden 512, 24 steps, unrolled by hand",
    "dlrm": "DLRM-style recommender (MLPs, 8 embedding tables, dot interaction); inputs: dense + indices",
    "swin_tiny": "Swin-T (shifted 7x7 windows, patch merging), 224x224 image",
}


def list_networks() -> list[str]:
    return list(NETWORKS)


def network_tag(name: str, batch_size: int) -> str:
    """The source tag of a network's tasks: the bare name at batch size 1, "name-bsN" otherwise,
    so one suite can hold the same network at several batch sizes."""
    return name if batch_size == 1 else f"{name}-bs{batch_size}"


def network_relax_module(name: str, batch_size: int = 1) -> tuple[tvm.IRModule, dict[str, list]]:
    """Import a network into Relax, target-independent and not yet legalized.

    Returns (mod, params): mod["main"] takes the network inputs (their count is the function's
    "num_input" attribute; every network has one except dlrm, which takes dense features and int64
    embedding indices) followed by the weights, and params["main"]
    is the list of weight tensors in that order (relax.frontend.detach_params). BatchNorm running
    statistics are torch buffers, which the frontend embeds as constants rather than params.
    To compile: legalize_and_fuse(mod, target), optionally MetaScheduleApplyDatabase under
    `with target, database:`, then tvm.compile(mod, target=target), and call
    vm["main"](*inputs, *params["main"]). Verified to match torch's output (1e-6) for
    dcgan_generator, lstm and bert_base_layer. Weights come from a fixed seed, so torch_models.build
    with the same name and batch size gives the identical model to compare against.
    """
    _check_network(name)
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    import torch  # lazy: torch is heavy and only networks need it
    from tvm.relax.frontend.torch import from_exported_program

    from . import torch_models

    model, inputs = torch_models.build(name, batch_size)
    with torch.no_grad():
        exported = torch.export.export(model, inputs)
    mod = from_exported_program(exported, keep_params_as_input=True)
    return relax.frontend.detach_params(mod)


def legalize_and_fuse(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Lower Relax ops to fused TIR PrimFuncs, the form MetaSchedule extracts tasks from and tunes.

    The same passes relax.pipeline.static_shape_tuning_pipeline runs before tuning; extract_tasks on
    an un-legalized module finds no tasks. The target scope picks target-specific legalizations.
    FoldConstant (in the zero pipeline) dominates the cost for CNNs: it JIT-builds a kernel to fold
    each BatchNorm's constant statistics, about 5 s for resnet18 and 20 s for resnet50 here.
    """
    with target:
        return tvm.transform.Sequential(
            [
                relax.transform.DecomposeOpsForInference(),  # BatchNorm -> arithmetic, so it fuses into convs
                relax.transform.CanonicalizeBindings(),
                relax.get_pipeline("zero"),  # LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR
            ]
        )(mod)


def network_tasks(name: str, target: tvm.target.Target, batch_size: int = 1) -> list[Task]:
    """The MetaSchedule tuning tasks of a network, named "<tag>.<extracted task name>"."""
    mod, _params = network_relax_module(name, batch_size)
    tag = network_tag(name, batch_size)
    tasks = []
    for extracted in ms.relax_integration.extract_tasks(legalize_and_fuse(mod, target), target):
        # extracted_tasks_to_tune_contexts skips these too: there is nothing left to tune.
        if extracted.mod.attrs and extracted.mod.attrs.get("tirx.is_scheduled", False):
            continue
        tasks.append(Task.from_source(f"{tag}.{extracted.task_name}", extracted.dispatched[0], tag, extracted.weight))
    return tasks


def _check_network(name: str) -> None:
    if name not in NETWORKS:
        raise UserError(f"unknown network {name!r}; valid networks: {', '.join(NETWORKS)}")
