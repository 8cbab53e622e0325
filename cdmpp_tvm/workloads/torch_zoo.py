"""The network zoo: more benchmark networks in plain torch, to widen the dataset's set of distinct tasks.

Split by family over torch_zoo_*.py (classification CNNs, Inception, mobile CNNs, dense prediction /
video / audio / 1D, transformers, Swin). Like torch_models, these modules import torch at module level
and are only imported through torch_models, so `import cdmpp_tvm.workloads` stays torch-free.
torch_models.BUILDERS merges ZOO_BUILDERS, and torch_models.build (fixed-seed weights, eval mode)
stays the single entry point. Descriptions live in networks.NETWORKS.
"""

from __future__ import annotations

from . import (
    torch_zoo_cnn,
    torch_zoo_dense,
    torch_zoo_inception,
    torch_zoo_mobile,
    torch_zoo_swin,
    torch_zoo_transformer,
)

ZOO_BUILDERS = {}
for _module in (torch_zoo_cnn, torch_zoo_inception, torch_zoo_mobile, torch_zoo_dense, torch_zoo_transformer,
                torch_zoo_swin):
    if overlap := ZOO_BUILDERS.keys() & _module.BUILDERS.keys():
        raise RuntimeError(f"duplicate zoo network names: {sorted(overlap)}")
    ZOO_BUILDERS.update(_module.BUILDERS)
