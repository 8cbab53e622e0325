"""``cdmpp-tvm tune``: tune a workload with CDMPPCostModel and print the best latency found."""
from __future__ import annotations

import time

from ..cost_model import CDMPPCostModel
from ..tuning import TuneResult, tune
from ..workloads import load_tasks
from .common import TARGET_HELP, cli_target, positive_int


def register(sub) -> None:
    p = sub.add_parser("tune", help="tune a workload with CDMPPCostModel and print the best latency found")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--workload", default=None,
                     help="built-in operator or network name, or a TVMScript .py file with one @T.prim_func "
                          "(default: conv2d, a ResNet-18 3x3 convolution)")
    src.add_argument("--network", default=None, help="tune every task of a network defined in code, e.g. resnet18")
    p.add_argument("--trials", type=positive_int, default=64,
                   help="measured trials in total over all tasks (default 64)")
    p.add_argument("--target", default="host", help=TARGET_HELP)
    p.add_argument("--work-dir", default=None, help="where the MetaSchedule database and logs go "
                                                   "(default: ./work_dirs/tune-<workload>-<time>)")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint path or bundled name; default: the bundled one for the target; "
                        "'scratch' = untrained model that learns online")
    p.add_argument("--trials-per-iter", type=positive_int, default=32)
    p.add_argument("--population-size", type=positive_int, default=512,
                   help="evolutionary search population (default 512)")
    p.add_argument("--task-scheduler", choices=["gradient", "round-robin"], default="gradient")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    target = cli_target(args.target)
    spec = args.network or args.workload or "conv2d"
    tasks = load_tasks([spec], target)
    label = spec.rsplit("/", 1)[-1].removesuffix(".py")
    work_dir = args.work_dir or f"work_dirs/tune-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"Tuning {spec}: {len(tasks)} task(s), {args.trials} trials, target {target}", flush=True)
    cost_model = CDMPPCostModel(checkpoint=args.checkpoint)
    result = tune(tasks, target, args.trials, work_dir, cost_model, trials_per_iter=args.trials_per_iter,
                  task_scheduler=args.task_scheduler, seed=args.seed, population_size=args.population_size)
    cost_model.log_stats()
    _print_result(result, args.trials_per_iter)
    return 1 if all(t.best_latency_s is None for t in result.tasks) else 0


def _print_result(result: TuneResult, trials_per_iter: int) -> None:
    width = max(len(t.name) for t in result.tasks)
    for t in result.tasks:
        best = "no valid measurement" if t.best_latency_s is None else f"{t.best_latency_s * 1e3:.4f} ms"
        print(f"  {t.name:<{width}}  weight {t.weight:g}  {t.trials:4d} records  best {best}")
    total = result.weighted_latency_s
    unmeasured = [t.name for t in result.tasks if t.best_latency_s is None]
    if len(result.tasks) > 1:
        print(f"Weighted latency (sum of weight x best): "
              f"{'n/a' if total is None else f'{total * 1e3:.4f} ms'}")
    elif total is not None:
        print(f"Best latency: {total * 1e3:.4f} ms")
    if unmeasured:
        print(f"{len(unmeasured)} of {len(result.tasks)} task(s) have no valid measurement; give at least "
              f"tasks x --trials-per-iter = {len(result.tasks) * trials_per_iter} trials to reach every task")
    print(f"MetaSchedule database: {result.database_dir}/database_tuning_record.json "
          f"(workloads: {result.database_dir}/database_workload.json)")
