"""Print the tasks of workloads or suites: `python -m cdmpp_tvm.workloads resnet18 ci-tiny.yaml --target cuda`.

Useful to check what a suite will tune and how long extraction takes before starting data collection.
"""

from __future__ import annotations

import argparse
import time

import tvm

from . import list_workloads, load_suite, load_workload
from .suite import list_suites


def _target(kind: str) -> tvm.target.Target:
    if kind == "cuda":
        return tvm.target.Target("nvidia/nvidia-h100")
    return tvm.target.Target({"kind": "llvm", "num-cores": 2, "mcpu": tvm.target.codegen.llvm_get_system_cpu()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("specs", nargs="*", help=f"workload names, .py files, suite names or .yaml files; workloads: {', '.join(list_workloads())}; suites: {', '.join(list_suites())}")
    parser.add_argument("--target", choices=["llvm", "cuda"], default="llvm")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every task")
    args = parser.parse_args(argv)
    target = _target(args.target)
    for spec in args.specs:
        start = time.perf_counter()
        is_suite = spec.endswith((".yaml", ".yml")) or spec in list_suites()
        tasks = load_suite(spec, target) if is_suite else load_workload(spec, target)
        elapsed = time.perf_counter() - start
        total = sum(t.weight for t in tasks)
        print(f"{spec}: {len(tasks)} tasks, total weight {total:g}, {elapsed:.1f} s")
        if args.verbose:
            for t in tasks:
                print(f"  {t.weight:6g}  {t.name}  tags={','.join(t.tags)}")


if __name__ == "__main__":
    main()
