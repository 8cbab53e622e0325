"""How long MetaSchedule takes to build one batch of candidates: default LocalBuilder vs make_builder().

For apache-tvm 0.27.0.post1. Exists to measure what tvm_patches.fast_builder saves: the default
builder's workers each import every backend's tensor intrinsics on every batch.

For each workload, N random candidates (ReplayTrace) for the host llvm target are built by
  * default:    ms.builder.LocalBuilder()   (default_build, imports tvm.s_tir.tensor_intrin)
  * fast:       tvm_patches.make_builder()  (fast_build)
  * in_process: fast_build called sequentially in this process (no worker start-up at all; a floor)
Builder construction (LocalBuilder runs a one-worker sanity check) is timed separately from the batch.
Both builders get the same timeout (see BUILD_TIMEOUT_SEC).
Writes benchmarks/results/builder_speed.{json,png}. Timings depend on machine load, which is recorded.

    python benchmarks/builder_speed.py [--count 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tvm import te
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.testing import te_workload

from cdmpp_tvm.atomic_io import write_figure_atomic  # noqa: E402
from tvm_patches import (
    check_tvm_versions,
    fast_build,
    host_target,
    make_builder,
    physical_cores,
    quiet_metaschedule_logging,
    register_tensor_intrinsics,
    sample_candidates,
)

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

WORKLOADS = {
    # ResNet-18 3x3 layer: NHWC 1x56x56x64 -> 64, stride 1, pad 1
    "conv2d_nhwc_56x56x64_3x3": lambda: te_workload.conv2d_nhwc(
        1, 56, 56, 64, 64, 3, 3, 1, 1
    ),
    "matmul_512": lambda: te_workload.matmul(512, 512, 512),
}

# Same generous timeout for both. With LocalBuilder's own 30 s, the default builder's workers,
# which import the intrinsics inside the (timed) first build task, time out on every candidate
# when the machine is loaded, and the batch would measure timeouts, not builds.
BUILD_TIMEOUT_SEC = 600.0

BUILDERS = {
    "default": lambda: ms.builder.LocalBuilder(
        max_workers=physical_cores(), timeout_sec=BUILD_TIMEOUT_SEC
    ),
    "fast": lambda: make_builder(timeout_sec=BUILD_TIMEOUT_SEC),
}


def time_builder(make, inputs: list[ms.builder.BuilderInput]) -> dict:
    start = time.perf_counter()
    builder = make()
    constructed = time.perf_counter()
    results = builder.build(inputs)
    done = time.perf_counter()
    return {
        "construct_s": round(constructed - start, 3),
        "build_s": round(done - constructed, 3),
        "errors": sum(1 for r in results if r.error_msg),
    }


def time_in_process(candidates, target) -> float:
    start = time.perf_counter()
    for candidate in candidates:
        fast_build(candidate.sch.mod, target, None)
    return round(time.perf_counter() - start, 3)


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["workloads"])
    series = ["default", "fast", "in_process"]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, kind in enumerate(series):
        values = [
            report["workloads"][n][kind]["build_s"]
            if kind != "in_process"
            else report["workloads"][n]["in_process_s"]
            for n in names
        ]
        bars = ax.bar(
            [x + i * width for x in range(len(names))], values, width, label=kind
        )
        ax.bar_label(bars, fmt="%.1f s", fontsize=8)
    ax.set_xticks([x + width for x in range(len(names))], names)
    ax.set_ylabel(f"seconds to build {report['count']} candidates")
    ax.set_title(
        f"MetaSchedule build batch, {report['target']['mcpu']}, "
        f"{report['max_workers']} workers, load {report['loadavg_before'][0]:.1f}"
    )
    ax.legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=32, help="candidates per batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    versions = check_tvm_versions()
    quiet_metaschedule_logging()
    target = host_target()
    register_tensor_intrinsics(target)  # so sampling here does not pay the full import
    report = {
        "tvm_versions": versions,
        "target": {
            "mcpu": str(target.attrs["mcpu"]),
            "num_cores": int(target.attrs["num-cores"]),
        },
        "count": args.count,
        "max_workers": physical_cores(),
        "build_timeout_sec": BUILD_TIMEOUT_SEC,
        "loadavg_before": os.getloadavg(),
        "workloads": {},
    }
    for name, make_workload in WORKLOADS.items():
        candidates = sample_candidates(
            te.create_prim_func(make_workload()), target, args.count, seed=args.seed
        )
        inputs = [ms.builder.BuilderInput(c.sch.mod, target) for c in candidates]
        entry = {
            "candidates": len(candidates),
            "in_process_s": time_in_process(candidates, target),
        }
        for kind, make in BUILDERS.items():
            entry[kind] = time_builder(make, inputs)
            entry[kind]["loadavg_after"] = os.getloadavg()
        report["workloads"][name] = entry
        print(f"{name}: {json.dumps(entry)}", flush=True)
    report["loadavg_after"] = os.getloadavg()

    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, "builder_speed.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot(report, os.path.join(RESULTS_DIR, "builder_speed.png"))
    print(
        "builder_speed: "
        + "; ".join(
            f"{n} x{e['candidates']}: default {e['default']['build_s']:.1f} s, "
            f"fast {e['fast']['build_s']:.1f} s ({e['default']['build_s'] / e['fast']['build_s']:.1f}x), "
            f"in-process {e['in_process_s']:.1f} s"
            for n, e in report["workloads"].items()
        )
        + f" (loadavg {report['loadavg_before'][0]:.1f} -> {report['loadavg_after'][0]:.1f})"
    )


if __name__ == "__main__":
    main()
