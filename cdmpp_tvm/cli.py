"""``cdmpp-tvm``: the command line.

    cdmpp-tvm tune [--workload NAME|FILE.py | --network NAME] [--trials N] [--target host|TAG|JSON]
                   [--work-dir D] [--checkpoint PATH|NAME|scratch]
    cdmpp-tvm train [--config configs/train/NAME.yaml] [--database DIR ...] [--out CKPT] [--epochs N]
                    [--resume-state PATH]     (data-parallel: torchrun --nproc_per_node N -m cdmpp_tvm.cli train ...)
    cdmpp-tvm tune-hparams --config configs/train/NAME.yaml --trials N [--storage sqlite:///F.db --study-name S]
                           [--out best.yaml]
    cdmpp-tvm collect (--suite NAME|YAML | --workload W ...) --out DIR [--random N] [--evolutionary M]
                      [--rpc-tracker HOST:PORT --rpc-key KEY]
    cdmpp-tvm featurize --database DIR [DIR ...] [--kind cdmpp|perstore|all]
    cdmpp-tvm split --dataset ROOT (--held-out NET ... | --test-devices DEV ...) --out SPLIT.json
    cdmpp-tvm evaluate --checkpoint C (--database DIR ... | --split S.json) [--json OUT]
    cdmpp-tvm predict-network --network NAME [--target T] [--checkpoint C] [--database DIR ...] [--measure]
    cdmpp-tvm bench-search (--workload W ... | --suite S) --out DIR [--models ...] [--trials N] [--seeds ...]
                         [--report-only]
    cdmpp-tvm devices [--json]
    cdmpp-tvm select --checkpoint C --workloads SUITE|NAME ... --device DEV --budget N --out DIR
                     [--per-task-candidates 256] [--method kmeans|random]
    cdmpp-tvm collect --from-selection DIR --out OUT [--target host|TAG|JSON]
    cdmpp-tvm finetune --checkpoint BASE --database DIR ... --out NEW [--source-database DIR ...]
                       [--cmd-weight 1.0] [--epochs N] [--val-fraction 0.2]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from tvm_patches.host_target import resolve_target

from .errors import UserError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def cli_target(spec: str):
    """A --target/--device value as a Target; one it cannot read is a UserError naming it."""
    try:
        return resolve_target(spec)
    except ValueError as e:
        raise UserError(f"--target {spec!r}: {e}") from e


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="tune a workload with CDMPPCostModel and print the best latency found")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--workload", default=None,
                     help="built-in operator or network name, or a TVMScript .py file with one @T.prim_func "
                          "(default: conv2d, a ResNet-18 3x3 convolution)")
    src.add_argument("--network", default=None, help="tune every task of a network defined in code, e.g. resnet18")
    p.add_argument("--trials", type=positive_int, default=64, help="measured trials in total over all tasks (default 64)")
    p.add_argument("--target", default="host",
                   help='"host" (this CPU, with mcpu), a target tag such as nvidia/nvidia-h100, or a JSON dict')
    p.add_argument("--work-dir", default=None, help="where the MetaSchedule database and logs go "
                                                   "(default: ./work_dirs/tune-<workload>-<time>)")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint path or bundled name; default: the bundled one for the target; "
                        "'scratch' = untrained model that learns online")
    p.add_argument("--trials-per-iter", type=positive_int, default=32)
    p.add_argument("--population-size", type=positive_int, default=512, help="evolutionary search population (default 512)")
    p.add_argument("--task-scheduler", choices=["gradient", "round-robin"], default="gradient")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args) -> int:
    from . import CDMPPCostModel
    from .tuning import tune
    from .workloads import load_workload

    target = cli_target(args.target)
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
    p.add_argument("--config", default=str(_default_train_config()),
                   help="training YAML; it may also name the data (databases: or split:), target_domain_databases:, "
                        "out: and state_path: (default: %(default)s)")
    p.add_argument("--database", nargs="+", default=None,
                   help="database directories (searched recursively); override the config's databases/split")
    p.add_argument("--out", default=None, help="checkpoint file to write (overrides the config's out)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the config's epochs")
    p.add_argument("--resume-state", default=None,
                   help="training-state file, written every checkpoint_every epochs and resumed from when it "
                        "exists (overrides the config's state_path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _default_train_config():
    from .config import CONFIG_DIR

    return CONFIG_DIR / "train" / "default.yaml"


def _train_job(args):
    """The training YAML of ``args.config`` with the command-line overrides put in."""
    import dataclasses

    from .config import load_train_job

    job = load_train_job(args.config)
    if getattr(args, "database", None):
        job = dataclasses.replace(job, databases=list(args.database))
    if getattr(args, "out", None):
        job = dataclasses.replace(job, out=args.out)
    if getattr(args, "resume_state", None):
        job = dataclasses.replace(job, state_path=args.resume_state)
    train_cfg = job.train
    if getattr(args, "epochs", None) is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=args.epochs)
    if getattr(args, "no_progress", False):
        train_cfg = dataclasses.replace(train_cfg, progress=False)
    return dataclasses.replace(job, train=train_cfg)


def _load_train_data(job, master: bool = True):
    """(training data, its facts, target-domain data or None) of a training job; errors as ConfigError."""
    from .config import ConfigError
    from .data.feature_cache import load_cached_training_data

    dirs, target_dirs = job.training_dirs(), job.target_domain_dirs()
    data, facts = load_cached_training_data(dirs)
    if master:
        print(f"Read {facts['n_databases']} databases: {len(data)} valid records, {facts['n_failed']} failed runs",
              flush=True)
    target = None
    if job.train.cmd_weight > 0:
        if not target_dirs:
            raise ConfigError(f"{job.path}: cmd_weight > 0 needs target_domain_databases (unlabeled target programs)")
        target, tfacts = load_cached_training_data(target_dirs)
        if master:
            print(f"Target domain (CMD, latencies unused): {len(target)} programs from {tfacts['n_databases']} "
                  "databases", flush=True)
    elif target_dirs and master:
        print("note: target_domain_databases is ignored because cmd_weight is 0", flush=True)
    return data, facts, target


def _cmd_train(args) -> int:
    import tvm

    from .checkpoint import save_checkpoint
    from .config import ConfigError
    from .device import device_name
    from .model.training import init_distributed, train

    job = _train_job(args)
    if not job.out:
        raise ConfigError(f"{args.config}: no checkpoint to write; pass --out or set out: in the config")
    dirs = job.training_dirs()
    # Under torchrun (WORLD_SIZE > 1) every rank loads the data; rank 0 featurizes first so that the ranks
    # do not write the same feature caches at once, and only rank 0 prints and writes the checkpoint.
    ctx = init_distributed("gloo" if job.train.device == "cpu" else None)
    master = ctx.rank == 0
    try:
        if ctx.world_size > 1:
            import torch.distributed as dist

            from .data.feature_cache import featurize_databases

            if master:
                featurize_databases(dirs + job.target_domain_dirs())
            dist.barrier()
        data, facts, target = _load_train_data(job, master)
        if len(data) == 0:
            raise UserError(f"no valid records to train on in {', '.join(map(str, dirs))}")
        tasks = sorted(set(data.groups.tolist()))
        if master:
            print(f"Training on {len(data)} programs from {len(tasks)} tasks"
                  + (f" on {ctx.world_size} processes" if ctx.world_size > 1 else ""), flush=True)
        model, label_transform, history = train(data, job.model, job.train, target_domain=target,
                                                state_path=job.state_path)
        if not master:
            return 0
        targets = facts["targets"]
        devices = sorted({device_name(tvm.target.Target(t)) for t in targets})
        info = {"train_config": job.train.to_dict(), "history": history, "n_programs": len(data),
                "n_tasks": len(tasks), "databases": [str(d) for d in dirs],
                "split": job.split, "config": str(args.config), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        save_checkpoint(job.out, model, label_transform,
                        {"name": ", ".join(devices), "targets": targets,
                         "descriptor": data.device[0].tolist() if data.device is not None else []}, info)
        best = history["best_epoch"] if history["best_epoch"] >= 0 else -1
        print(f"Best validation loss {history['val_loss'][best]:.4f} (MAPE {history['val_mape'][best]:.1%}) at epoch "
              f"{best} ({history['stopped']}, {history['seconds']:.0f} s). Wrote {job.out}")
        return 0
    finally:
        if ctx.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _add_tune_hparams(sub) -> None:
    p = sub.add_parser("tune-hparams", help="search training hyperparameters with Optuna (TPE) on the "
                                            "validation tasks of a training config")
    p.add_argument("--config", default=str(_default_train_config()),
                   help="base training YAML (data, fixed settings, optional hparam_search:); default: %(default)s")
    p.add_argument("--trials", type=positive_int, default=None, help="finished trials the study should have (default: the "
                                                            "config's hparam_search.trials)")
    p.add_argument("--database", nargs="+", default=None, help="override the config's databases/split")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs per trial (default: hparam_search.epochs)")
    p.add_argument("--time-limit", type=non_negative_float, default=None,
                   help="seconds per trial (default: hparam_search.time_limit_s)")
    p.add_argument("--storage", default=None, help="Optuna storage, e.g. sqlite:///hparams.db (resumable)")
    p.add_argument("--study-name", default=None)
    p.add_argument("--seed", type=int, default=None, help="TPE sampler seed")
    p.add_argument("--out", default=None, help="write the best config here as a training YAML")
    p.set_defaults(func=_cmd_tune_hparams)


def _cmd_tune_hparams(args) -> int:
    import yaml

    from .config import write_train_config
    from .hparam_search import best_job, search_hparams, trials_table

    job = _train_job(argparse.Namespace(config=args.config, database=args.database))
    data, _, target = _load_train_data(job)
    s = job.hparam_search
    trials = args.trials if args.trials is not None else s.trials
    epochs = args.epochs if args.epochs is not None else s.epochs
    time_limit = args.time_limit if args.time_limit is not None else s.time_limit_s
    storage, study_name = args.storage or s.storage, args.study_name or s.study_name
    seed = args.seed if args.seed is not None else s.seed
    if storage and storage.startswith("sqlite:///"):  # sqlite does not create the directory
        from pathlib import Path

        Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    print(f"Searching hyperparameters: {trials} trials x <= {epochs} epochs"
          + (f" / {time_limit:.0f} s" if time_limit else "") + f" on {len(data)} programs"
          + (f", study {study_name!r} in {storage}" if storage else ""), flush=True)
    study = search_hparams(data, job.model, job.train, trials, trial_epochs=epochs, trial_time_limit_s=time_limit,
                           storage=storage, study_name=study_name, seed=seed, target_domain=target)
    for row in trials_table(study):
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        print(f"  trial {row['number']:3d} {row['state']:8s} val MAPE {value}")
    try:
        best = best_job(study, job)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Best trial {study.best_trial.number}: validation MAPE {study.best_value:.2%}, {study.best_trial.params}")
    header = (f"Best of {len(study.trials)} trials of study {study_name!r} (validation MAPE {study.best_value:.4f}), "
              f"from {args.config}.\nTrain with: cdmpp-tvm train --config THIS_FILE")
    if args.out:
        write_train_config(best, args.out, header)
        print(f"Wrote {args.out}")
    else:
        print(yaml.safe_dump(best.to_yaml_dict(), sort_keys=False))
    return 0


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="measure programs of a workload suite into MetaSchedule databases")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--suite", help="suite name in configs/workloads (operators, networks, ci-tiny) or a YAML path")
    src.add_argument("--workload", action="append", help="a workload name or TVMScript file (repeatable)")
    src.add_argument("--from-selection", default=None,
                     help="measure exactly the programs of a selection directory (cdmpp-tvm select)")
    p.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    p.add_argument("--target", default="host", help='"host", a target tag or a JSON dict')
    p.add_argument("--random", type=non_negative_int, default=64, help="random design-space samples per task (default 64)")
    p.add_argument("--evolutionary", type=non_negative_int, default=64, help="evolutionary-search samples per task (default 64)")
    p.add_argument("--builder", choices=["fast", "default"], default="fast")
    p.add_argument("--build-timeout", type=non_negative_float, default=60.0, help="seconds per candidate build (default 60)")
    p.add_argument("--min-repeat-ms", type=non_negative_int, default=40)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rpc-tracker", default=None, help="HOST:PORT of a TVM RPC tracker (measure remotely)")
    p.add_argument("--rpc-key", default=None, help="device key registered with the tracker")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_collect)


def _rpc_settings(args):
    """RPCSettings from --rpc-tracker/--rpc-key, or None for local measurement."""
    from .data.collect import RPCSettings

    if not (args.rpc_tracker or args.rpc_key):
        return None
    host, _, port = (args.rpc_tracker or "").rpartition(":")
    if not (host and port.isdigit() and args.rpc_key):
        raise UserError(f"--rpc-tracker HOST:PORT and --rpc-key KEY go together (got --rpc-tracker "
                        f"{args.rpc_tracker!r}, --rpc-key {args.rpc_key!r})")
    return RPCSettings(host, int(port), args.rpc_key)


def _print_collect_summary(manifest: dict) -> None:
    t, run = manifest["totals"], manifest["last_run"]
    rate = run["valid_records_per_hour"]
    print(f"{t['tasks']} tasks, {t['records']} records: {t['valid']} valid, {t['build_failed']} build errors, "
          f"{t['run_failed']} run errors. This run: {run['valid_records']} valid records in {run['seconds']:.0f} s"
          + (f" ({rate:.0f}/hour)" if rate else ""))


def _cmd_collect(args) -> int:
    if args.from_selection:
        return _cmd_collect_from_selection(args)
    from .data.collect import CollectConfig, collect
    from .workloads import load_suite, load_workload
    from .workloads.suite import merge_duplicate_tasks

    target = cli_target(args.target)
    if args.suite:
        tasks = load_suite(args.suite, target)
    else:
        tasks = merge_duplicate_tasks([t for w in args.workload for t in load_workload(w, target)])
    rpc = _rpc_settings(args)
    cfg = CollectConfig(random_trials=args.random, evolutionary_trials=args.evolutionary, builder=args.builder,
                        build_timeout_s=args.build_timeout,
                        min_repeat_ms=args.min_repeat_ms, repeat=args.repeat, seed=args.seed)
    print(f"Collecting {len(tasks)} task(s) x {cfg.random_trials}+{cfg.evolutionary_trials} trials on {target} "
          f"into {args.out}", flush=True)
    manifest = collect(tasks, target, args.out, cfg, rpc=rpc)
    _print_collect_summary(manifest)
    return 0


def _add_featurize(sub) -> None:
    p = sub.add_parser("featurize", help="store compact-AST features of databases (done by train when missing)")
    p.add_argument("--database", nargs="+", required=True, help="database directories (searched recursively)")
    p.add_argument("--force", action="store_true", help="re-featurize even if the cache is fresh")
    p.add_argument("--kind", choices=["cdmpp", "perstore", "all"], default="all",
                   help="compact ASTs (cdmpp), PerStoreFeature rows for the baselines (perstore), or both")
    p.set_defaults(func=_cmd_featurize)


def _cmd_featurize(args) -> int:
    from .data.feature_cache import FEATURE_KINDS, featurize_databases

    kinds = list(FEATURE_KINDS.values()) if args.kind == "all" else [FEATURE_KINDS[args.kind]]
    for kind in kinds:
        caches = featurize_databases(args.database, force=args.force, kind=kind)
        print(f"{len(caches)} {kind.name} feature cache(s) up to date")
    return 0


def _add_data_card(sub) -> None:
    p = sub.add_parser("data-card", help="per-source counts and collection runs of a collected dataset (Markdown)")
    p.add_argument("dataset", help="a `cdmpp-tvm collect --out` directory (holds manifest.json)")
    p.add_argument("--json", default=None, help="also write the numbers as JSON to this file")
    p.set_defaults(func=_cmd_data_card)


def _cmd_data_card(args) -> int:
    from .atomic_io import write_json_atomic
    from .data.data_card import data_card_markdown, load_manifest, summarize

    manifest = load_manifest(args.dataset)
    print(data_card_markdown(manifest), end="")
    if args.json:
        write_json_atomic(args.json, summarize(manifest))
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


def _add_predict_network(sub) -> None:
    p = sub.add_parser("predict-network", help="predict a network's latency from its tasks' best known schedules")
    p.add_argument("--network", required=True, help="network defined in code, e.g. resnet50")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--target", default="host", help='"host", a target tag or a JSON dict')
    p.add_argument("--checkpoint", default=None, help="checkpoint path or bundled name (default: bundled for the target)")
    p.add_argument("--database", nargs="*", default=[],
                   help="MetaSchedule databases with measured schedules (searched recursively); tasks without "
                        "a record use the best-predicted of --samples random programs")
    p.add_argument("--samples", type=positive_int, default=256, help="random programs per task without a record")
    p.add_argument("--measure", action="store_true",
                   help="also compile the network with the chosen schedules and measure it")
    p.add_argument("--json", default=None, help="write the per-task breakdown here")
    p.set_defaults(func=_cmd_predict_network)


def _cmd_predict_network(args) -> int:

    from tvm_patches.tensor_intrin import register_tensor_intrinsics

    from .checkpoint import load_checkpoint, pretrained_for_target
    from .network_latency import measure_network_latency, predict_network_latency

    target = cli_target(args.target)
    register_tensor_intrinsics(target)
    name = args.checkpoint or pretrained_for_target(target)
    if name is None:
        print(f"error: no bundled checkpoint for target kind {target.kind.name!r}; pass --checkpoint", file=sys.stderr)
        return 2
    checkpoint = load_checkpoint(name)
    print(f"Checkpoint: {checkpoint.path}", flush=True)
    result = predict_network_latency(args.network, target, checkpoint, args.database, args.batch_size, args.samples)
    print(f"{'task':60s} {'weight':>6s} {'schedule':>9s} {'predicted ms':>13s} {'measured ms':>12s}")
    for t in result.tasks:
        measured = "" if t.measured_s is None else f"{t.measured_s * 1e3:12.4f}"
        print(f"{t.name[:60]:60s} {t.weight:6.0f} {t.source:>9s} {t.predicted_s * 1e3:13.4f} {measured:>12s}")
    print(f"Predicted {args.network} latency (sum of weight x predicted): {result.predicted_s * 1e3:.3f} ms")
    if result.measured_tasks_s is not None:
        print(f"Sum of weight x measured task latency: {result.measured_tasks_s * 1e3:.3f} ms")
    if args.measure:
        measured = measure_network_latency(result, target)
        print(f"Measured latency of the compiled network: {measured * 1e3:.3f} ms "
              f"(prediction error {abs(result.predicted_s - measured) / measured:.1%})")
    if args.json:
        from .atomic_io import write_json_atomic

        write_json_atomic(args.json, result.to_dict())
    return 0


def add_bench_search_arguments(p) -> None:
    """Arguments of ``cdmpp-tvm bench-search`` (shared with benchmarks/search.py)."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", action="append",
                     help="operator or network name, or a TVMScript .py file (repeatable)")
    src.add_argument("--suite", help="suite name in configs/workloads or a YAML path")
    p.add_argument("--models", nargs="+", default=["cdmpp", "cdmpp-scratch", "xgb", "random"],
                   help="cost models to compare: cdmpp cdmpp-scratch xgb random")
    p.add_argument("--trials", type=positive_int, default=256, help="measured trials per task (default 256)")
    p.add_argument("--budgets", type=positive_int, nargs="+", default=[64, 128, 256],
                   help="trials per task at which the summary compares models")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--trials-per-iter", type=positive_int, default=32)
    p.add_argument("--population-size", type=positive_int, default=512)
    p.add_argument("--checkpoint", default=None, help="checkpoint of the 'cdmpp' model (default: bundled for the target)")
    p.add_argument("--target", default="host", help='"host", a target tag or a JSON dict')
    p.add_argument("--out", required=True, help="results directory (resumed if it exists)")
    p.add_argument("--report-only", action="store_true",
                   help="tune nothing: write the report of the runs already finished in --out (tasks that not "
                        "every model and seed has finished are left out and listed)")


def _add_bench_search(sub) -> None:
    p = sub.add_parser("bench-search", help="best latency vs trials for several cost models (see benchmarks/search.py)")
    add_bench_search_arguments(p)
    p.set_defaults(func=cmd_bench_search)


def cmd_bench_search(args) -> int:
    from .search_benchmark import SearchBenchConfig, run_benchmark, summary_markdown
    from .workloads import load_suite, load_workload
    from .workloads.suite import merge_duplicate_tasks

    target = cli_target(args.target)
    tasks = load_suite(args.suite, target) if args.suite else \
        merge_duplicate_tasks([t for w in args.workload for t in load_workload(w, target)])
    budgets = tuple(b for b in args.budgets if b <= args.trials) or (args.trials,)
    cfg = SearchBenchConfig(models=tuple(args.models), trials=args.trials, trials_per_iter=args.trials_per_iter,
                            population_size=args.population_size, seeds=tuple(args.seeds), checkpoint=args.checkpoint,
                            budgets=budgets)
    runs = len(tasks) * len(cfg.models) * len(cfg.seeds)
    print(f"Search benchmark: {len(tasks)} task(s) x {len(cfg.models)} models x {len(cfg.seeds)} seeds = {runs} runs "
          f"of {cfg.trials} trials on {target} -> {args.out}", flush=True)
    report = run_benchmark(tasks, target, cfg, args.out, run_missing=not args.report_only)
    print(summary_markdown(report))
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy of a CDMPP checkpoint on measured databases (MAPE, RMSE, ranking)")
    p.add_argument("--checkpoint", required=True, help="checkpoint path or bundled name (e.g. llvm-cpu)")
    p.add_argument("--database", nargs="+", default=None,
                   help="database directories (searched recursively); with --split, one directory: the dataset "
                        "root, replacing the root stored in the split file")
    p.add_argument("--split", default=None, help="split JSON file (cdmpp-tvm split): evaluate its --part")
    p.add_argument("--part", choices=["train", "test"], default="test", help="part of --split (default: test)")
    p.add_argument("--json", default=None, help="write the metrics as JSON to this file")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:

    from .checkpoint import load_checkpoint
    from .data.feature_cache import COMPACT_AST, load_cached_features, to_training_data
    from .data.reader import find_databases
    from .data.splits import read_split
    from .evaluation import compute_metrics, format_metrics_table, program_keys, task_labels

    if not args.database and not args.split:
        raise UserError("give --database DIR [DIR ...] or --split SPLIT.json")
    if args.split:
        if args.database and len(args.database) > 1:
            raise UserError("with --split, --database takes one directory (the dataset root)")
        train_dirs, test_dirs = read_split(args.split, args.database[0] if args.database else None)
        paths = test_dirs if args.part == "test" else train_dirs
    else:
        paths = args.database
    databases = find_databases(paths)
    if not databases:
        raise UserError(f"no MetaSchedule databases (database_tuning_record.json) under {', '.join(map(str, paths))}")
    checkpoint = load_checkpoint(args.checkpoint)
    cached, facts = load_cached_features(databases, COMPACT_AST)
    if len(cached) == 0:
        raise UserError(f"no valid records in {len(databases)} database(s) ({facts['n_failed']} failed runs)")
    data = to_training_data(cached)
    pred_s = checkpoint.predict_latency_s(data.asts, data.device)
    result = compute_metrics(pred_s, cached.latencies, task_labels(cached.groups, facts["task_names"]),
                             program_keys(data.asts))
    print(format_metrics_table(result, title=f"{checkpoint.path} on {len(databases)} database(s), "
                                             f"{len(cached)} valid records ({facts['n_failed']} failed runs skipped)"))
    if args.json:
        out = {"checkpoint": checkpoint.path, "databases": [str(d) for d in databases], "split": args.split,
               "part": args.part if args.split else None, "n_failed": facts["n_failed"],
               "units": {"mape": "fraction", "rmse": "ms"}, **result}
        from .atomic_io import write_json_atomic

        write_json_atomic(args.json, out)
        print(f"Wrote {args.json}")
    return 0


def _add_devices(sub) -> None:
    p = sub.add_parser("devices", help="list the known devices (descriptor table) and the devices of this machine")
    p.add_argument("--json", action="store_true", help="print JSON (facts and descriptors) instead of text")
    p.set_defaults(func=_cmd_devices)


def _cmd_devices(args) -> int:
    import json

    from .device import describe_devices, format_devices

    info = describe_devices()
    print(json.dumps(info, indent=1) if args.json else format_devices(info))
    return 0


def _resolve_device(spec: str):
    """(target, device table entry or None) of a --device value: a table name or a target spec."""
    from .device import KNOWN_DEVICES, device_for_target, device_target

    if spec in KNOWN_DEVICES:
        return device_target(spec), KNOWN_DEVICES[spec]
    target = cli_target(spec)
    return target, device_for_target(target)


def _load_tasks(specs: list[str], target):
    """Tasks of --workloads values: suite names / YAML files, or workload names / .py files."""
    from .workloads import load_suite, load_workload
    from .workloads.suite import list_suites, merge_duplicate_tasks

    tasks = []
    for spec in specs:
        if spec in list_suites() or spec.endswith((".yaml", ".yml")):
            tasks += load_suite(spec, target)
        else:
            tasks += load_workload(spec, target)
    return merge_duplicate_tasks(tasks)


def _add_select(sub) -> None:
    p = sub.add_parser("select", help="choose which programs to measure on a new device (KMeans over embeddings)")
    p.add_argument("--checkpoint", required=True, help="checkpoint path or bundled name whose embeddings are clustered")
    p.add_argument("--workloads", nargs="+", required=True, help="suite names/YAML files or workload names/.py files")
    p.add_argument("--device", required=True,
                   help="the new device: a name from `cdmpp-tvm devices`, or a target (host, a tag, a JSON dict)")
    p.add_argument("--budget", type=positive_int, required=True, help="programs to select, over all tasks together")
    p.add_argument("--out", required=True, help="selection directory to write (new or empty)")
    p.add_argument("--per-task-candidates", type=positive_int, default=256, help="design-space samples per task (default 256)")
    p.add_argument("--method", choices=["kmeans", "random"], default="kmeans")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_select)


def _cmd_select(args) -> int:
    from .checkpoint import load_checkpoint
    from .selection import select_programs

    target, spec = _resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    tasks = _load_tasks(args.workloads, target)
    print(f"Selecting {args.budget} programs ({args.method}) for device {spec.name if spec else target} from "
          f"{len(tasks)} task(s) x {args.per_task_candidates} candidates", flush=True)
    sel = select_programs(checkpoint, tasks, target, args.budget, args.out, args.per_task_candidates,
                          args.method, args.seed, device_spec=spec)
    for t in sel["tasks"].values():
        print(f"  {t['name'][:60]:60s} {t['selected']:5d} of {t['candidates']} candidates")
    print(f"Wrote {sel['n_selected']} programs of {len(sel['tasks'])} task(s) to {args.out} "
          f"(measure them: cdmpp-tvm collect --from-selection {args.out} --out DIR)")
    return 0


def _cmd_collect_from_selection(args) -> int:
    from .data.collect import CollectConfig, collect_from_selection
    from .device import device_for_target
    from .selection import read_selection

    selection = read_selection(args.from_selection)
    target = cli_target(args.target)
    rpc = _rpc_settings(args)
    entry = device_for_target(target)
    wanted = selection.get("device", {}).get("name")
    if entry is not None and wanted and entry.name != wanted:
        print(f"warning: the selection was made for device {wanted}, but --target {args.target} is {entry.name}",
              file=sys.stderr)
    cfg = CollectConfig(builder=args.builder, build_timeout_s=args.build_timeout, min_repeat_ms=args.min_repeat_ms,
                        repeat=args.repeat, seed=args.seed)
    print(f"Measuring the {selection.get('n_selected', '?')} selected programs of {args.from_selection} on {target} "
          f"into {args.out}", flush=True)
    manifest = collect_from_selection(args.from_selection, target, args.out, cfg, rpc=rpc)
    _print_collect_summary(manifest)
    return 0


def _add_finetune(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a checkpoint on a new device's measured records")
    p.add_argument("--checkpoint", required=True, help="BASE checkpoint path or bundled name")
    p.add_argument("--database", nargs="+", required=True, help="the new device's databases (searched recursively)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--source-database", nargs="+", default=None,
                   help="databases of the source device(s): programs for the CMD regularizer (latencies unused)")
    p.add_argument("--cmd-weight", type=non_negative_float, default=1.0, help="CMD weight; 0 = off (default 1)")
    p.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (default 100)")
    p.add_argument("--val-fraction", type=fraction, default=0.2,
                   help="share of the new device's tasks held out for validation (default 0.2)")
    p.add_argument("--lr", type=non_negative_float, default=None, help="learning rate (default: BASE's training lr, else 5e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_finetune)


def _cmd_finetune(args) -> int:
    from .adaptation import finetune_databases

    extra = {} if args.lr is None else {"lr": args.lr}
    result = finetune_databases(args.checkpoint, args.database, args.out, args.source_database, args.cmd_weight,
                                args.epochs, args.val_fraction, args.seed, progress=not args.no_progress, **extra)
    print(f"Fine-tuned on {result.n_train} programs of {len(result.train_tasks)} task(s); validation: "
          f"{result.n_val} programs of {len(result.val_tasks)} held-out task(s)")
    if result.val is not None:
        print(f"Validation loss {result.base_val['loss']:.4f} -> {result.val['loss']:.4f}, MAPE "
              f"{result.base_val['mape']:.1%} -> {result.val['mape']:.1%} (BASE -> fine-tuned)")
    print(f"Wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdmpp-tvm", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_tune(sub)
    _add_train(sub)
    _add_tune_hparams(sub)
    _add_collect(sub)
    _add_featurize(sub)
    _add_data_card(sub)
    _add_split(sub)
    _add_evaluate(sub)
    _add_predict_network(sub)
    _add_bench_search(sub)
    _add_devices(sub)
    _add_select(sub)
    _add_finetune(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a file the user named: a bug, keep the traceback
            raise
        print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
