"""``cdmpp-tvm collect``, ``featurize``, ``data-card`` and ``split``: measured data, from collecting it to
splitting it for evaluation."""
from __future__ import annotations

import sys
from pathlib import Path

from tvm.s_tir.meta_schedule.utils import shash2hex

from ..atomic_io import write_json_atomic
from ..data import TASK_CACHE, CollectConfig, RPCSettings, collect, collect_from_selection, measured_workloads
from ..data.data_card import data_card_markdown, dataset_totals, load_manifest, summarize, totals_markdown
from ..data.feature_cache import FEATURE_KINDS, featurize_databases
from ..data.remeasure import plan_remeasure
from ..data.protocol import load_protocol, protocol_splits, write_protocol_splits
from ..data.selection_files import read_selection
from ..data.splits import cross_device_split, cross_model_split, index_tasks, read_split, write_split
from ..device import device_for_target
from ..errors import UserError
from ..workloads import load_tasks
from ..workloads.task_cache import load_tasks_cached
from .common import TARGET_HELP, cli_target, non_negative_float, non_negative_int, positive_int


def register(sub) -> None:
    _add_collect(sub)
    _add_featurize(sub)
    _add_data_card(sub)
    _add_split(sub)
    _add_plan_remeasure(sub)


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="measure programs of a workload suite into MetaSchedule databases")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--suite", help="suite name in configs/workloads (operators, networks, ci-tiny) or a YAML path")
    src.add_argument("--workload", action="append", help="a workload name or TVMScript file (repeatable)")
    src.add_argument("--from-selection", default=None,
                     help="measure exactly the programs of a selection directory (cdmpp-tvm select)")
    p.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    p.add_argument("--target", default="host", help=TARGET_HELP)
    p.add_argument("--random", type=non_negative_int, default=64,
                   help="random design-space samples per task (default 64)")
    p.add_argument("--evolutionary", type=non_negative_int, default=64,
                   help="evolutionary-search samples per task (default 64)")
    p.add_argument("--builder", choices=["fast", "default"], default="fast")
    p.add_argument("--build-timeout", type=non_negative_float, default=60.0,
                   help="seconds per candidate build (default 60)")
    p.add_argument("--min-repeat-ms", type=non_negative_int, default=40)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rpc-tracker", default=None, help="HOST:PORT of a TVM RPC tracker (measure remotely)")
    p.add_argument("--rpc-key", default=None, help="device key registered with the tracker")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-measured", nargs="+", default=[], metavar="DIR",
                   help="skip tasks whose workload has valid records in these collections (measure new tasks)")
    p.add_argument("--skip-single-program", action="store_true",
                   help="skip tasks whose design space is one program (layout ops: nothing to rank)")
    p.set_defaults(func=run_collect)


def rpc_settings(args) -> RPCSettings | None:
    """RPCSettings from --rpc-tracker/--rpc-key, or None for local measurement."""
    if not (args.rpc_tracker or args.rpc_key):
        return None
    host, _, port = (args.rpc_tracker or "").rpartition(":")
    if not (host and port.isdigit() and args.rpc_key):
        raise UserError(f"--rpc-tracker HOST:PORT and --rpc-key KEY go together (got --rpc-tracker "
                        f"{args.rpc_tracker!r}, --rpc-key {args.rpc_key!r})")
    return RPCSettings(host, int(port), args.rpc_key)


def run_collect(args) -> int:
    if args.from_selection:
        return _collect_from_selection(args)
    target = cli_target(args.target)
    # Extracting a large suite's tasks takes minutes: a resumed collection reads them from its directory.
    tasks = load_tasks_cached([args.suite] if args.suite else args.workload, target, Path(args.out) / TASK_CACHE)
    rpc = rpc_settings(args)
    cfg = CollectConfig(random_trials=args.random, evolutionary_trials=args.evolutionary, builder=args.builder,
                        build_timeout_s=args.build_timeout,
                        min_repeat_ms=args.min_repeat_ms, repeat=args.repeat, seed=args.seed)
    print(f"Collecting {len(tasks)} task(s) x {cfg.random_trials}+{cfg.evolutionary_trials} trials on {target} "
          f"into {args.out}", flush=True)
    manifest = collect(tasks, target, args.out, cfg, rpc=rpc, skip_workloads=measured_workloads(args.skip_measured),
                       skip_single_program=args.skip_single_program)
    _print_collect_summary(manifest)
    return 0


def _collect_from_selection(args) -> int:
    selection = read_selection(args.from_selection)
    target = cli_target(args.target)
    rpc = rpc_settings(args)
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


def _print_collect_summary(manifest: dict) -> None:
    t, run = manifest["totals"], manifest["last_run"]
    rate = run["valid_records_per_hour"]
    print(f"{t['tasks']} tasks, {t['records']} records: {t['valid']} valid, {t['build_failed']} build errors, "
          f"{t['run_failed']} run errors. This run: {run['valid_records']} valid records in {run['seconds']:.0f} s"
          + (f" ({rate:.0f}/hour)" if rate else ""))


def _add_featurize(sub) -> None:
    p = sub.add_parser("featurize", help="store compact-AST features of databases (done by train when missing)")
    p.add_argument("--database", nargs="+", required=True, help="database directories (searched recursively)")
    p.add_argument("--force", action="store_true", help="re-featurize even if the cache is fresh")
    p.add_argument("--kind", choices=["cdmpp", "perstore", "all"], default="all",
                   help="compact ASTs (cdmpp), PerStoreFeature rows for the baselines (perstore), or both")
    p.set_defaults(func=run_featurize)


def run_featurize(args) -> int:
    kinds = list(FEATURE_KINDS.values()) if args.kind == "all" else [FEATURE_KINDS[args.kind]]
    for kind in kinds:
        caches = featurize_databases(args.database, force=args.force, kind=kind)
        print(f"{len(caches)} {kind.name} feature cache(s) up to date")
    return 0


def _add_data_card(sub) -> None:
    p = sub.add_parser("data-card", help="per-source counts and collection runs of a collected dataset (Markdown)")
    p.add_argument("dataset", nargs="+", help="a `cdmpp-tvm collect --out` directory (holds manifest.json); "
                                              "with --totals, every root of the dataset")
    p.add_argument("--totals", action="store_true",
                   help="count the whole dataset from its databases: valid records and distinct tasks "
                        "(structural hashes) per root, per device and over all roots")
    p.add_argument("--json", default=None, help="also write the numbers as JSON to this file")
    p.set_defaults(func=run_data_card)


def run_data_card(args) -> int:
    if args.totals:
        numbers = dataset_totals(args.dataset)
        print(totals_markdown(numbers), end="")
    else:
        if len(args.dataset) != 1:
            raise UserError(f"data-card: one dataset directory, or several with --totals; got {len(args.dataset)}")
        manifest = load_manifest(args.dataset[0])
        numbers = summarize(manifest)
        print(data_card_markdown(manifest), end="")
    if args.json:
        write_json_atomic(args.json, numbers)
    return 0


def _add_split(sub) -> None:
    p = sub.add_parser("split", help="write train/test splits of a dataset: cross-model, cross-device, or the "
                                     "generalization protocol's final test and family folds")
    p.add_argument("--dataset", required=True, nargs="+",
                   help="root directory (or directories) of collected databases; the split's root is their "
                        "common parent")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--held-out", nargs="+", help="networks whose tasks form the test set (cross-model)")
    kind.add_argument("--test-devices", nargs="+", help="device names whose databases form the test set")
    kind.add_argument("--protocol", help="protocol YAML (configs/protocol/): writes final-test.json and one "
                                         "fold-<family>.json per family into --out, a directory")
    p.add_argument("--extract-held-out", action="store_true",
                   help="with --held-out: also extract the held-out networks' tasks now and hold out every "
                        "database of their workloads, including tasks collected under another network's name")
    p.add_argument("--out", required=True, help="split JSON file to write (a directory with --protocol)")
    p.set_defaults(func=run_split)


def run_split(args) -> int:
    tasks = index_tasks(args.dataset)
    if args.protocol:
        splits = protocol_splits(tasks, load_protocol(args.protocol))
        for path, split in zip(write_protocol_splits(splits, args.out), splits.values()):
            _print_split(split, path)
        return 0
    if args.extract_held_out and not args.held_out:
        raise UserError("--extract-held-out needs --held-out")
    if args.held_out:
        extra = ({shash2hex(t.mod) for t in load_tasks(args.held_out, cli_target("host"))}
                 if args.extract_held_out else set())
        split = cross_model_split(tasks, args.held_out, extra)
    else:
        split = cross_device_split(tasks, args.test_devices)
    write_split(split, args.out)
    _print_split(split, args.out)
    return 0


def _print_split(split: dict, path) -> None:
    print(f"{split['kind']}: {split['n_train_tasks']} training tasks ({len(split['train'])} databases), "
          f"{split['n_test_tasks']} test tasks ({len(split['test'])} databases) -> {path}")


def _add_plan_remeasure(sub) -> None:
    p = sub.add_parser("plan-remeasure", help="choose programs measured on another device to measure again here "
                                              "(program-by-program device comparison; measure with collect "
                                              "--from-selection)")
    p.add_argument("--database", nargs="+", required=True, help="measured databases (searched recursively)")
    p.add_argument("--out", required=True, help="selection directory to write (new or empty)")
    p.add_argument("--per-task", type=positive_int, default=32, help="programs per task (default 32)")
    p.add_argument("--max-tasks", type=positive_int, default=100, help="tasks, chosen at random (default 100)")
    p.add_argument("--exclude-split", default=None,
                   help="a split JSON (cdmpp-tvm split) whose test databases are left out, e.g. final-test.json")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_plan_remeasure)


def run_plan_remeasure(args) -> int:
    exclude = set()
    if args.exclude_split:
        _, test_dirs = read_split(args.exclude_split)
        exclude = {d.name for d in test_dirs}
    sel = plan_remeasure(args.database, args.out, args.per_task, args.max_tasks, args.seed, exclude)
    print(f"Wrote {sel['n_selected']} programs of {len(sel['tasks'])} task(s) (of {sel['eligible_tasks']} with "
          f">= {args.per_task} valid programs; {len(exclude)} excluded) to {args.out} "
          f"(measure them: cdmpp-tvm collect --from-selection {args.out} --out DIR)")
    return 0
