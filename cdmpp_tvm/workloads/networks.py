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
    "num_input" attribute; every network here has one) followed by the weights, and params["main"]
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
