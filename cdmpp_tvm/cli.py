"""``cdmpp-tvm``: the command line.

    cdmpp-tvm tune [--workload NAME|FILE.py | --network NAME] [--trials N] [--target host|TAG|JSON]
                   [--work-dir D] [--checkpoint PATH|NAME|scratch]
    cdmpp-tvm train --database DIR [DIR ...] --out CKPT [--config configs/train/default.yaml]
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
                  task_scheduler=args.task_scheduler, seed=args.seed)
    cost_model.log_stats()
    width = max(len(t.name) for t in result.tasks)
    for t in result.tasks:
        best = "no valid measurement" if t.best_latency_s is None else f"{t.best_latency_s * 1e3:.4f} ms"
        print(f"  {t.name:<{width}}  weight {t.weight:g}  {t.trials:4d} records  best {best}")
    total = result.weighted_latency_s
    if len(result.tasks) > 1:
        print(f"Weighted latency (sum of weight x best): "
              f"{'n/a (a task has no valid measurement)' if total is None else f'{total * 1e3:.4f} ms'}")
    elif total is not None:
        print(f"Best latency: {total * 1e3:.4f} ms")
    print(f"MetaSchedule database: {result.database_dir}/database_tuning_record.json "
          f"(workloads: {result.database_dir}/database_workload.json)")
    return 0 if total is not None else 1


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

    from .checkpoint import save_checkpoint
    from .config import load_train_config
    from .data.dataset import training_data_from_records
    from .data.reader import read_databases
    from .model.training import train

    model_cfg, train_cfg = load_train_config(args.config)
    if args.epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=args.epochs)
    report = read_databases(args.database)
    print(f"Read {len(report.records)} records ({report.n_valid} valid, {report.n_failed} failed, "
          f"{len(report.problems)} unreadable lines)", flush=True)
    data = training_data_from_records(report.records)
    if len(data) == 0:
        print("error: no valid records to train on", file=sys.stderr)
        return 2
    tasks = sorted(set(data.groups.tolist()))
    print(f"Training on {len(data)} programs from {len(tasks)} tasks", flush=True)
    model, label_transform, history = train(data, model_cfg, train_cfg)
    targets = sorted({str(r.target) for r in report.records})
    devices = sorted({_device_name_of(r.target) for r in report.records})
    info = {"train_config": train_cfg.to_dict(), "history": history, "n_programs": len(data), "n_tasks": len(tasks),
            "databases": [str(d) for d in args.database], "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save_checkpoint(args.out, model, label_transform,
                    {"name": ", ".join(devices), "targets": targets,
                     "descriptor": data.device[0].tolist() if data.device is not None else []}, info)
    print(f"Best validation loss {min(history['val_loss']):.4f} at epoch {history['best_epoch']} "
          f"({history['stopped']}, {history['seconds']:.0f} s). Wrote {args.out}")
    return 0


def _device_name_of(target) -> str:
    from .device import device_name

    return device_name(target)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdmpp-tvm", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_tune(sub)
    _add_train(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
