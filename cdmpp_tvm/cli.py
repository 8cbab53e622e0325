"""``cdmpp-tvm``: the command line.

    cdmpp-tvm tune [--workload NAME|FILE.py | --network NAME] [--trials N] [--target host|TAG|JSON]
                   [--work-dir D] [--checkpoint PATH|NAME|scratch]
    cdmpp-tvm train --database DIR [DIR ...] --out CKPT [--config configs/train/default.yaml]
    cdmpp-tvm collect (--suite NAME|YAML | --workload W ...) --out DIR [--random N] [--evolutionary M]
                      [--rpc-tracker HOST:PORT --rpc-key KEY]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="tune a workload with CDMPPCostModel and print the best latency found")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--workload", default=None,
                     help="built-in operator or network name, or a TVMScript .py file with one @T.prim_func "
                          "(default: conv2d, a ResNet-18 3x3 convolution)")
    src.add_argument("--network", default=None, help="tune every task of a network defined in code, e.g. resnet18")
    p.add_argument("--trials", type=int, default=64, help="measured trials in total over all tasks (default 64)")
    p.add_argument("--target", default="host",
                   help='"host" (this CPU, with mcpu), a target tag such as nvidia/nvidia-h100, or a JSON dict')
    p.add_argument("--work-dir", default=None, help="where the MetaSchedule database and logs go "
                                                   "(default: ./work_dirs/tune-<workload>-<time>)")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint path or bundled name; default: the bundled one for the target; "
                        "'scratch' = untrained model that learns online")
    p.add_argument("--trials-per-iter", type=int, default=32)
    p.add_argument("--population-size", type=int, default=512, help="evolutionary search population (default 512)")
    p.add_argument("--task-scheduler", choices=["gradient", "round-robin"], default="gradient")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args) -> int:
    from tvm_patches.host_target import resolve_target

    from . import CDMPPCostModel
    from .tuning import tune
    from .workloads import load_workload

    target = resolve_target(args.target)
    spec = args.network or args.workload or "conv2d"
    tasks = load_workload(spec, target)
    label = spec.rsplit("/", 1)[-1].removesuffix(".py")
    work_dir = args.work_dir or f"work_dirs/tune-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"Tuning {spec}: {len(tasks)} task(s), {args.trials} trials, target {target}", flush=True)
    cost_model = CDMPPCostModel(checkpoint=args.checkpoint)
    result = tune(tasks, target, args.trials, work_dir, cost_model, trials_per_iter=args.trials_per_iter,
                  task_scheduler=args.task_scheduler, seed=args.seed, population_size=args.population_size)
    cost_model.log_stats()
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
              f"tasks x --trials-per-iter = {len(result.tasks) * args.trials_per_iter} trials to reach every task")
    print(f"MetaSchedule database: {result.database_dir}/database_tuning_record.json "
          f"(workloads: {result.database_dir}/database_workload.json)")
    return 1 if len(unmeasured) == len(result.tasks) else 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a CDMPP checkpoint on MetaSchedule databases")
    p.add_argument("--database", nargs="+", required=True, help="database directories (searched recursively)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--config", default=str(_default_train_config()), help="training YAML (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.set_defaults(func=_cmd_train)


def _default_train_config():
    from .config import CONFIG_DIR

    return CONFIG_DIR / "train" / "default.yaml"


def _cmd_train(args) -> int:
    import dataclasses

    import tvm

    from .checkpoint import save_checkpoint
    from .config import load_train_config
    from .data.feature_cache import load_cached_training_data
    from .device import device_name
    from .model.training import train

    model_cfg, train_cfg = load_train_config(args.config)
    if args.epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=args.epochs)
    data, facts = load_cached_training_data(args.database)
    print(f"Read {facts['n_databases']} databases: {len(data)} valid records, {facts['n_failed']} failed runs",
          flush=True)
    if len(data) == 0:
        print("error: no valid records to train on", file=sys.stderr)
        return 2
    tasks = sorted(set(data.groups.tolist()))
    print(f"Training on {len(data)} programs from {len(tasks)} tasks", flush=True)
    model, label_transform, history = train(data, model_cfg, train_cfg)
    targets = facts["targets"]
    devices = sorted({device_name(tvm.target.Target(t)) for t in targets})
    info = {"train_config": train_cfg.to_dict(), "history": history, "n_programs": len(data), "n_tasks": len(tasks),
            "databases": [str(d) for d in args.database], "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save_checkpoint(args.out, model, label_transform,
                    {"name": ", ".join(devices), "targets": targets,
                     "descriptor": data.device[0].tolist() if data.device is not None else []}, info)
    print(f"Best validation loss {min(history['val_loss']):.4f} at epoch {history['best_epoch']} "
          f"({history['stopped']}, {history['seconds']:.0f} s). Wrote {args.out}")
    return 0


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="measure programs of a workload suite into MetaSchedule databases")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--suite", help="suite name in configs/workloads (operators, networks, ci-tiny) or a YAML path")
    src.add_argument("--workload", action="append", help="a workload name or TVMScript file (repeatable)")
    p.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    p.add_argument("--target", default="host", help='"host", a target tag or a JSON dict')
    p.add_argument("--random", type=int, default=64, help="random design-space samples per task (default 64)")
    p.add_argument("--evolutionary", type=int, default=64, help="evolutionary-search samples per task (default 64)")
    p.add_argument("--builder", choices=["fast", "default"], default="fast")
    p.add_argument("--build-timeout", type=float, default=60.0, help="seconds per candidate build (default 60)")
    p.add_argument("--min-repeat-ms", type=int, default=40)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rpc-tracker", default=None, help="HOST:PORT of a TVM RPC tracker (measure remotely)")
    p.add_argument("--rpc-key", default=None, help="device key registered with the tracker")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_collect)


def _cmd_collect(args) -> int:
    from tvm_patches.host_target import resolve_target

    from .data.collect import CollectConfig, RPCSettings, collect
    from .workloads import load_suite, load_workload
    from .workloads.suite import merge_duplicate_tasks

    target = resolve_target(args.target)
    if args.suite:
        tasks = load_suite(args.suite, target)
    else:
        tasks = merge_duplicate_tasks([t for w in args.workload for t in load_workload(w, target)])
    rpc = None
    if args.rpc_tracker or args.rpc_key:
        if not (args.rpc_tracker and args.rpc_key) or ":" not in args.rpc_tracker:
            print("error: --rpc-tracker HOST:PORT and --rpc-key KEY go together", file=sys.stderr)
            return 2
        host, port = args.rpc_tracker.rsplit(":", 1)
        rpc = RPCSettings(host, int(port), args.rpc_key)
    cfg = CollectConfig(random_trials=args.random, evolutionary_trials=args.evolutionary, builder=args.builder,
                        build_timeout_s=args.build_timeout,
                        min_repeat_ms=args.min_repeat_ms, repeat=args.repeat, seed=args.seed)
    print(f"Collecting {len(tasks)} task(s) x {cfg.random_trials}+{cfg.evolutionary_trials} trials on {target} "
          f"into {args.out}", flush=True)
    manifest = collect(tasks, target, args.out, cfg, rpc=rpc)
    t, run = manifest["totals"], manifest["last_run"]
    rate = run["valid_records_per_hour"]
    print(f"{t['tasks']} tasks, {t['records']} records: {t['valid']} valid, {t['build_failed']} build errors, "
          f"{t['run_failed']} run errors. This run: {run['valid_records']} valid records in {run['seconds']:.0f} s"
          + (f" ({rate:.0f}/hour)" if rate else ""))
    return 0


def _add_featurize(sub) -> None:
    p = sub.add_parser("featurize", help="store compact-AST features of databases (done by train when missing)")
    p.add_argument("--database", nargs="+", required=True, help="database directories (searched recursively)")
    p.add_argument("--force", action="store_true", help="re-featurize even if the cache is fresh")
    p.set_defaults(func=_cmd_featurize)


def _cmd_featurize(args) -> int:
    from .data.feature_cache import featurize_databases

    caches = featurize_databases(args.database, force=args.force)
    print(f"{len(caches)} feature cache(s) up to date")
    return 0


def _add_split(sub) -> None:
    p = sub.add_parser("split", help="write a cross-model or cross-device train/test split of a dataset")
    p.add_argument("--dataset", required=True, help="root directory of collected databases")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--held-out", nargs="+", help="networks whose tasks form the test set (cross-model)")
    kind.add_argument("--test-devices", nargs="+", help="device names whose databases form the test set")
    p.add_argument("--out", required=True, help="split JSON file to write")
    p.set_defaults(func=_cmd_split)


def _cmd_split(args) -> int:
    from .data.splits import (
        cross_device_split,
        cross_model_split,
        index_tasks,
        write_split,
    )

    tasks = index_tasks(args.dataset)
    split = cross_model_split(tasks, args.held_out) if args.held_out else cross_device_split(tasks, args.test_devices)
    write_split(split, args.out)
    print(f"{split['kind']}: {split['n_train_tasks']} training tasks ({len(split['train'])} databases), "
          f"{split['n_test_tasks']} test tasks ({len(split['test'])} databases) -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdmpp-tvm", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_tune(sub)
    _add_train(sub)
    _add_collect(sub)
    _add_featurize(sub)
    _add_split(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
