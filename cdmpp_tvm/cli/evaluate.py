"""``cdmpp-tvm evaluate`` and ``cdmpp-tvm predict-network``: how accurate a checkpoint is on measured records,
and what it predicts for a whole network."""
from __future__ import annotations

from tvm_patches.tensor_intrin import register_tensor_intrinsics

from ..atomic_io import write_json_atomic
from ..data.reader import find_databases
from ..data.splits import read_split
from ..errors import UserError
from ..evaluation import format_metrics_table
from ..model.accuracy import evaluate_checkpoint
from ..model.checkpoint import load_checkpoint, pretrained_for_target
from ..network_latency import measure_network_latency, predict_network_latency
from .common import TARGET_HELP, cli_target, positive_int


def register(sub) -> None:
    _add_evaluate(sub)
    _add_predict_network(sub)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy of a CDMPP checkpoint on measured databases (MAPE, RMSE, ranking)")
    p.add_argument("--checkpoint", required=True, help="checkpoint path or bundled name (e.g. llvm-cpu)")
    p.add_argument("--database", nargs="+", default=None,
                   help="database directories (searched recursively); with --split, one directory: the dataset "
                        "root, replacing the root stored in the split file")
    p.add_argument("--split", default=None, help="split JSON file (cdmpp-tvm split): evaluate its --part")
    p.add_argument("--part", choices=["train", "test"], default="test", help="part of --split (default: test)")
    p.add_argument("--json", default=None, help="write the metrics as JSON to this file")
    p.set_defaults(func=run_evaluate)



def run_evaluate(args) -> int:
    paths = _evaluated_paths(args)
    databases = find_databases(paths)
    if not databases:
        raise UserError(f"no MetaSchedule databases (database_tuning_record.json) under {', '.join(map(str, paths))}")
    checkpoint = load_checkpoint(args.checkpoint)
    result, facts, n_records = evaluate_checkpoint(checkpoint, databases)
    print(format_metrics_table(result, title=f"{checkpoint.path} on {len(databases)} database(s), "
                                             f"{n_records} valid records ({facts['n_failed']} failed runs skipped)"))
    if args.json:
        out = {"checkpoint": checkpoint.path, "databases": [str(d) for d in databases], "split": args.split,
               "part": args.part if args.split else None, "n_failed": facts["n_failed"],
               "units": {"mape": "fraction", "rmse": "ms"}, **result}
        write_json_atomic(args.json, out)
        print(f"Wrote {args.json}")
    return 0


def _evaluated_paths(args) -> list:
    """The directories --database / --split --part name."""
    if not args.database and not args.split:
        raise UserError("give --database DIR [DIR ...] or --split SPLIT.json")
    if not args.split:
        return args.database
    if args.database and len(args.database) > 1:
        raise UserError("with --split, --database takes one directory (the dataset root)")
    train_dirs, test_dirs = read_split(args.split, args.database[0] if args.database else None)
    return test_dirs if args.part == "test" else train_dirs


def _add_predict_network(sub) -> None:
    p = sub.add_parser("predict-network", help="predict a network's latency from its tasks' best known schedules")
    p.add_argument("--network", required=True, help="network defined in code, e.g. resnet50")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--target", default="host", help=TARGET_HELP)
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint path or bundled name (default: bundled for the target)")
    p.add_argument("--database", nargs="*", default=[],
                   help="MetaSchedule databases with measured schedules (searched recursively); tasks without "
                        "a record use the best-predicted of --samples random programs")
    p.add_argument("--samples", type=positive_int, default=256, help="random programs per task without a record")
    p.add_argument("--measure", action="store_true",
                   help="also compile the network with the chosen schedules and measure it")
    p.add_argument("--json", default=None, help="write the per-task breakdown here")
    p.set_defaults(func=run_predict_network)



def run_predict_network(args) -> int:
    target = cli_target(args.target)
    register_tensor_intrinsics(target)
    name = args.checkpoint or pretrained_for_target(target)
    if name is None:
        raise UserError(f"no bundled checkpoint for target kind {target.kind.name!r}; pass --checkpoint")
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
        write_json_atomic(args.json, result.to_dict())
    return 0
