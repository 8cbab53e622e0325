"""``cdmpp-tvm devices``, ``select`` and ``finetune``: the device table, choosing programs to measure on a
new device, and fine-tuning a checkpoint on its records."""
from __future__ import annotations

import json

from ..adaptation import finetune_databases, select_programs
from ..device import KNOWN_DEVICES, describe_devices, device_for_target, device_target, format_devices
from ..model.checkpoint import load_checkpoint
from ..workloads import load_tasks
from .common import cli_target, fraction, non_negative_float, positive_int


def register(sub) -> None:
    _add_devices(sub)
    _add_select(sub)
    _add_finetune(sub)


def _add_devices(sub) -> None:
    p = sub.add_parser("devices", help="list the known devices (descriptor table) and the devices of this machine")
    p.add_argument("--json", action="store_true", help="print JSON (facts and descriptors) instead of text")
    p.set_defaults(func=run_devices)



def run_devices(args) -> int:
    info = describe_devices()
    print(json.dumps(info, indent=1) if args.json else format_devices(info))
    return 0


def resolve_device(spec: str):
    """(target, device table entry or None) of a --device value: a table name or a target spec."""
    if spec in KNOWN_DEVICES:
        return device_target(spec), KNOWN_DEVICES[spec]
    target = cli_target(spec)
    return target, device_for_target(target)


def _add_select(sub) -> None:
    p = sub.add_parser("select", help="choose which programs to measure on a new device (KMeans over embeddings)")
    p.add_argument("--checkpoint", required=True, help="checkpoint path or bundled name whose embeddings are clustered")
    p.add_argument("--workloads", nargs="+", required=True, help="suite names/YAML files or workload names/.py files")
    p.add_argument("--device", required=True,
                   help="the new device: a name from `cdmpp-tvm devices`, or a target (host, a tag, a JSON dict)")
    p.add_argument("--budget", type=positive_int, required=True, help="programs to select, over all tasks together")
    p.add_argument("--out", required=True, help="selection directory to write (new or empty)")
    p.add_argument("--per-task-candidates", type=positive_int, default=256,
                   help="design-space samples per task (default 256)")
    p.add_argument("--method", choices=["kmeans", "random"], default="kmeans")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_select)



def run_select(args) -> int:
    target, spec = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    tasks = load_tasks(args.workloads, target)
    print(f"Selecting {args.budget} programs ({args.method}) for device {spec.name if spec else target} from "
          f"{len(tasks)} task(s) x {args.per_task_candidates} candidates", flush=True)
    sel = select_programs(checkpoint, tasks, target, args.budget, args.out, args.per_task_candidates,
                          args.method, args.seed, device_spec=spec)
    for t in sel["tasks"].values():
        print(f"  {t['name'][:60]:60s} {t['selected']:5d} of {t['candidates']} candidates")
    print(f"Wrote {sel['n_selected']} programs of {len(sel['tasks'])} task(s) to {args.out} "
          f"(measure them: cdmpp-tvm collect --from-selection {args.out} --out DIR)")
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
    p.add_argument("--lr", type=non_negative_float, default=None,
                   help="learning rate (default: BASE's training lr, else 5e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_finetune)



def run_finetune(args) -> int:
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
