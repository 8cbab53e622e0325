"""Benchmark: candidates per second of CDMPPCostModel.predict vs MetaSchedule's XGBModel.predict.

Both models score the same candidates: one search round's worth (5 predict calls x 512 candidates =
2,560) for a ResNet-18 conv2d and for a 512^3 matmul, drawn by random sampling of each design space.
CDMPP's featurization cache starts cold, so every candidate is featurized once (the real search also
re-scores survivors, which would hit the cache: this is the pessimistic case; with the compiled
featurizer nothing is cached). Also timed: the Python walker alone on the same candidates (the
fallback when the compiled featurizer cannot be built), and whether both give the same features.

XGBModel returns random numbers without extracting features until it has seen 100 samples, so it is
first trained on 128 other candidates of the same workload with synthetic latencies: its predict cost
(feature extraction + booster) does not depend on the label values.

Also reported: the CDMPP transformer's inference alone (no featurization, no tree head) on the CPU, and
on CUDA when present; CDMPPCostModel.predict's end-to-end number includes the checkpoint's tree head.

``--device cuda`` (issue 19, on a GPU machine): the candidates come from a CUDA target's design space
(default: the nvidia-h200 entry of the device table), CDMPPCostModel runs on the GPU, and inference alone
is timed in fp32, TF32 and bf16 autocast, per predict call (512 programs per batch) and per search round
(2,560 programs in one batch), with how far TF32/bf16 predictions move from fp32's. Written to
``predict_throughput-cuda.{json,png}``.

    python benchmarks/predict_throughput.py [--candidates 2560] [--out benchmarks/results]
    python benchmarks/predict_throughput.py --device cuda [--target '{"kind": "cuda", ...}']
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import tvm  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402

from cdmpp_tvm import CDMPPCostModel  # noqa: E402
from cdmpp_tvm.atomic_io import write_figure_atomic, write_json_atomic  # noqa: E402
from cdmpp_tvm.device import KNOWN_DEVICES  # noqa: E402
from cdmpp_tvm.features import CompactASTFeaturizer, is_gpu_target  # noqa: E402
from cdmpp_tvm.features.compact_ast import extract_compact_ast_python  # noqa: E402
from cdmpp_tvm.model.inference import predict_transformed  # noqa: E402
from cdmpp_tvm.torch_threads import torch_threads  # noqa: E402
from cdmpp_tvm.workloads import load_workload  # noqa: E402
from tvm_patches.candidates import sample_candidates  # noqa: E402
from tvm_patches.host_target import host_target, resolve_target  # noqa: E402
from tvm_patches.quiet_logging import quiet_metaschedule_logging  # noqa: E402
from tvm_patches.tensor_intrin import register_tensor_intrinsics  # noqa: E402

CALL_SIZE = 512  # the evolutionary search's population per predict call
# Inference-only variants on CUDA: name -> (autocast dtype, TF32 matmuls allowed).
CUDA_PRECISIONS = {"fp32": (None, False), "tf32": (None, True), "bf16": (torch.bfloat16, False)}


def timed_predict(model, ctx, cands) -> float:
    start = time.perf_counter()
    for i in range(0, len(cands), CALL_SIZE):
        scores = model.predict(ctx, cands[i:i + CALL_SIZE])
        assert len(scores) == len(cands[i:i + CALL_SIZE])
    return time.perf_counter() - start


def trained_xgb(ctx, train_cands) -> ms.cost_model.XGBModel:
    xgb = ms.cost_model.XGBModel(num_warmup_samples=0)
    rng = np.random.default_rng(0)
    results = [ms.runner.RunnerResult(run_secs=[float(x)], error_msg=None)
               for x in rng.lognormal(np.log(1e-3), 1.0, len(train_cands))]
    xgb.update(ctx, train_cands, results)
    return xgb


def inference_only(cdmpp, asts, device: str, batch_size: int = CALL_SIZE, autocast=None,
                   repeats: int = 3) -> tuple[float, np.ndarray]:
    """Transformer inference alone on ``asts``: (programs per second, predictions of the last pass)."""
    model = cdmpp.model.to(device)  # the loaded checkpoint's transformer (no update has run)
    dev = torch.device(device)
    with torch_threads(1 if device == "cpu" else None):
        predict_transformed(model, asts[:batch_size], None, batch_size, dev, autocast=autocast)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            pred = predict_transformed(model, asts, None, batch_size, dev, autocast=autocast)
        if device == "cuda":
            torch.cuda.synchronize()
    return repeats * len(asts) / (time.perf_counter() - start), pred


def cuda_precisions(cdmpp, asts) -> dict:
    """Inference-only programs/s on CUDA per precision and batch size, and each precision's agreement with
    fp32 (largest absolute difference in the label space, Spearman correlation of the predictions)."""
    out, reference = {}, None
    for name, (autocast, tf32) in CUDA_PRECISIONS.items():
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        for batch_size in (CALL_SIZE, len(asts)):
            rate, pred = inference_only(cdmpp, asts, "cuda", batch_size, autocast, repeats=10)
            out[f"{name}_batch{batch_size}_cand_per_s"] = rate
        if reference is None:
            reference = pred
        out[f"{name}_max_abs_diff_vs_fp32"] = float(np.max(np.abs(pred - reference)))
        out[f"{name}_spearman_vs_fp32"] = float(spearmanr(pred, reference)[0])
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=2560)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu: this CPU's candidates, the model on the CPU; cuda: a CUDA target's candidates, the "
                         "model on the GPU, with fp32/TF32/bf16 inference-only variants")
    ap.add_argument("--target", default=None, help="with --device cuda: the CUDA target, a tag or a JSON dict "
                                                   "(default: the nvidia-h200 entry of the device table)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA GPU on this machine")
    if args.target is not None and args.device != "cuda":
        ap.error("--target is for --device cuda (--device cpu measures this CPU's own target)")
    quiet_metaschedule_logging()
    if args.device == "cuda":
        target = resolve_target(args.target) if args.target else tvm.target.Target(KNOWN_DEVICES["nvidia-h200"].target)
    else:
        target = host_target()
    register_tensor_intrinsics(target)
    gpu = is_gpu_target(target)
    rows = []
    for name in ("conv2d", "matmul"):
        mod = load_workload(name, target)[0].mod
        cands = sample_candidates(mod, target, args.candidates + 128, seed=1)
        ctx = ms.TuneContext(mod=mod, target=target, task_name=name, num_threads="physical")
        train, cands = cands[:128], cands[128:]
        xgb_s = timed_predict(trained_xgb(ctx, train), ctx, cands)
        cdmpp = CDMPPCostModel(device=args.device)
        cdmpp_s = timed_predict(cdmpp, ctx, cands)
        st = cdmpp.stats()
        asts = CompactASTFeaturizer().featurize([c.sch.mod for c in cands], is_gpu=gpu)
        start = time.perf_counter()
        python_asts = [extract_compact_ast_python(c.sch.mod["main"], gpu) for c in cands]
        python_s = time.perf_counter() - start
        same = all(np.array_equal(a.leaf_features, b.leaf_features) for a, b in zip(asts, python_asts))
        row = {"workload": name, "candidates": len(cands), "xgb_seconds": xgb_s, "xgb_cand_per_s": len(cands) / xgb_s,
               "cdmpp_seconds": cdmpp_s, "cdmpp_cand_per_s": len(cands) / cdmpp_s,
               "cdmpp_featurize_seconds": st["featurize_seconds"], "cdmpp_inference_seconds": st["inference_seconds"],
               "cdmpp_cache_hit_rate": st["cache_hit_rate"], "cdmpp_native_featurizer": st["native_featurizer"],
               "cdmpp_torch_device": st["torch_device"],
               "python_walker_cand_per_s": len(cands) / python_s, "native_equals_python": same,
               "inference_only_cpu_cand_per_s": inference_only(cdmpp, asts, "cpu")[0],
               "inference_only_cuda_cand_per_s": inference_only(cdmpp, asts, "cuda")[0] if torch.cuda.is_available() else None}
        if args.device == "cuda":
            row |= {f"inference_only_cuda_{k}": v for k, v in cuda_precisions(cdmpp, asts).items()}
        rows.append(row)
        print(f"{name}: XGB {row['xgb_cand_per_s']:.0f} cand/s ({xgb_s:.2f} s), CDMPP {row['cdmpp_cand_per_s']:.0f} cand/s "
              f"({cdmpp_s:.2f} s on {st['torch_device']}: featurize {row['cdmpp_featurize_seconds']:.2f} s, inference "
              f"{row['cdmpp_inference_seconds']:.2f} s, {'compiled' if st['native_featurizer'] else 'Python'} featurizer; "
              f"Python walker alone {row['python_walker_cand_per_s']:.0f} cand/s, same features: {same}); inference alone {row['inference_only_cpu_cand_per_s']:.0f} cand/s CPU"
              + (f", {row['inference_only_cuda_cand_per_s']:.0f} cand/s CUDA" if row["inference_only_cuda_cand_per_s"] else ""),
              flush=True)
        for key in sorted(k for k in row if k.startswith("inference_only_cuda_") and k != "inference_only_cuda_cand_per_s"):
            print(f"  {key}: {row[key]:.6g}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.node(), "cpu": tvm.target.codegen.llvm_get_system_cpu(), "cores": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "call_size": CALL_SIZE, "device": args.device,
            "target": str(target), "torch": torch.__version__,
            "xgb_note": "XGBModel trained first on 128 candidates with synthetic latencies (predict cost is label-independent)"}
    stem = "predict_throughput" if args.device == "cpu" else "predict_throughput-cuda"
    write_json_atomic(out / f"{stem}.json", {"meta": meta, "rows": rows})
    _plot(rows, out / f"{stem}.png")
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["xgb_cand_per_s"] for r in rows], 0.4, label="XGBModel.predict")
    ax.bar(x + 0.2, [r["cdmpp_cand_per_s"] for r in rows], 0.4, label="CDMPPCostModel.predict")
    ax.set_xticks(x, [f"{r['workload']} ({r['candidates']} cand.)" for r in rows])
    ax.set_ylabel("candidates / second")
    ax.set_title("Cost-model predict throughput (one search round, cold cache)")
    ax.legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)


if __name__ == "__main__":
    main()
