"""``cdmpp-tvm``: the command line (one module per command group; each has ``register(sub)``).

    cdmpp-tvm tune [--workload NAME|FILE.py | --network NAME] [--trials N] [--target host|TAG|JSON]
                   [--work-dir D] [--checkpoint PATH|NAME|scratch]
    cdmpp-tvm train [--config configs/train/NAME.yaml] [--database DIR ...] [--out CKPT] [--epochs N]
                    [--resume-state PATH]     (data-parallel: torchrun --nproc_per_node N -m cdmpp_tvm.cli train ...)
    cdmpp-tvm tune-hparams --config configs/train/NAME.yaml --trials N [--storage sqlite:///F.db --study-name S]
                           [--out best.yaml]
    cdmpp-tvm collect (--suite NAME|YAML | --workload W ...) --out DIR [--random N] [--evolutionary M]
                      [--rpc-tracker HOST:PORT --rpc-key KEY]
    cdmpp-tvm featurize --database DIR [DIR ...] [--kind cdmpp|perstore|all]
    cdmpp-tvm split --dataset ROOT (--held-out NET ... | --test-devices DEV ... | --protocol P.yaml) --out OUT
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

from ..errors import UserError
from . import bench, data, devices, evaluate, train, tune

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdmpp-tvm", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (tune, train, data, evaluate, bench, devices):  # the order of `cdmpp-tvm --help`
        group.register(sub)
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
