"""Self-check of data-parallel training on tiny synthetic programs (no TVM database needed):

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m cdmpp_tvm.training.ddp_check --out DIR

Every rank trains the same small model and writes ``DIR/rank<R>.json`` with a SHA-256 of its final weights,
its training-loss curve, the world size and how many programs it processed. Ranks that really trained
together end with the same digest, and each processed only its shard of the data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

from ..data.dataset import TrainingData
from ..features import FEATURE_DIM, CompactAST
from ..model import ModelConfig
from .config import TrainConfig
from .loop import train

TINY_MODEL = ModelConfig(d_model=32, n_heads=2, n_layers=1, d_ff=64, embed_dim=32, regressor_hidden=[32])


def synthetic_program(n_leaves: int, rng: np.random.Generator, shift: float = 0.0) -> CompactAST:
    """A random compact AST: Gaussian leaf features (+ ``shift``), leaves at even pre-order positions."""
    feats = (rng.normal(size=(n_leaves, FEATURE_DIM)) + shift).astype(np.float32)
    return CompactAST(feats, np.arange(1, n_leaves + 1, dtype=np.int32) * 2, np.zeros(1, np.int32),
                      np.zeros(1, np.int32), np.ones(1, np.int32))


def synthetic_training_data(n: int = 64, n_tasks: int = 4, seed: int = 0, shift: float = 0.0) -> TrainingData:
    """Programs whose latency is a function of their features (so a model can learn it), in ``n_tasks`` tasks."""
    rng = np.random.default_rng(seed)
    asts = [synthetic_program(1 + i % 4, rng, shift) for i in range(n)]
    lat = np.exp(np.array([a.leaf_features[:, 0].mean() + 0.5 * a.leaf_features[:, 1].mean() for a in asts]) - 7)
    return TrainingData(asts, lat, np.array([f"t{i % n_tasks}" for i in range(n)]))


def state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for rank<R>.json")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--programs", type=int, default=96)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = synthetic_training_data(args.programs, n_tasks=6)
    cfg = TrainConfig(epochs=args.epochs, batch_size=16, lr=2e-3, warmup_steps=2, device="cpu", patience=1000,
                      progress=False)
    model, _, history = train(data, TINY_MODEL, cfg)
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world_size": history["world_size"], "digest": state_digest(model),
                   "train_loss": history["train_loss"], "samples_seen": history["samples_seen"],
                   "epochs_run": len(history["train_loss"])}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
