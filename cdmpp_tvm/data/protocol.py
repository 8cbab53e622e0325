"""The generalization protocol: a final test set fixed once, and leave-one-family-out folds on the rest.

A protocol file (``configs/protocol/*.yaml``) names ``final_test`` networks and ``families`` of the
other networks. ``protocol_splits`` turns it and a collected dataset into split files in the format of
``splits.py`` (so ``train --config`` with ``split:``, ``evaluate --split`` and benchmarks/accuracy.py read
them):

* ``final-test.json``: test = every task that occurs in a final-test network (at any batch size: a tag
  ``name-bsN`` belongs to network ``name``), including tasks it shares with other networks; train = all
  other tasks. Nothing chooses a model on it: it is scored once, at the end.
* ``fold-<family>.json``, one per family: test = the non-final tasks that occur in one of the family's
  networks; train = every other non-final task (standalone operators included). Final-test tasks are
  in neither part.

Tasks are identified by workload hash, so a workload collected in two directories lands on one side.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import UserError
from .splits import TaskDir, network_of, split_by_predicate, write_split

_KEYS = {"name", "final_test", "families"}


@dataclass(frozen=True)
class Protocol:
    name: str
    final_test: tuple[str, ...]
    families: dict[str, tuple[str, ...]]


def load_protocol(path: str | os.PathLike) -> Protocol:
    """Read and check a protocol YAML; errors name the file and the key."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(spec, dict) or set(spec) != _KEYS:
        raise UserError(f"{path}: expected exactly the keys {sorted(_KEYS)}")
    final = spec["final_test"]
    families = spec["families"]
    if not isinstance(final, list) or len(final) < 1 or not all(isinstance(n, str) for n in final):
        raise UserError(f"{path}: final_test must be a list of network names")
    if not isinstance(families, dict) or not all(
            isinstance(v, list) and v and all(isinstance(n, str) for n in v) for v in families.values()):
        raise UserError(f"{path}: families must map each family name to a list of network names")
    named = list(final) + [n for v in families.values() for n in v]
    if twice := sorted({n for n in named if named.count(n) > 1}):
        raise UserError(f"{path}: network(s) {twice} named more than once (final_test and families are disjoint)")
    return Protocol(str(spec["name"]), tuple(final), {k: tuple(v) for k, v in families.items()})


def protocol_splits(tasks: list[TaskDir], protocol: Protocol) -> dict[str, dict]:
    """{file stem: split} for the final test and every family fold (see the module docstring)."""
    def networks(task: TaskDir) -> set[str]:
        return {network_of(t) for t in task.tags}

    final = set(protocol.final_test)
    final_workloads = {t.workload for t in tasks if networks(t) & final}
    if not final_workloads:
        raise UserError(f"protocol {protocol.name}: no task of the final-test networks {sorted(final)} in the dataset")
    splits = {"final-test": split_by_predicate("final-test", {"protocol": protocol.name, "held_out": sorted(final)},
                                               tasks, lambda t: t.workload in final_workloads)}
    rest = [t for t in tasks if t.workload not in final_workloads]
    for family, members in protocol.families.items():
        test_workloads = {t.workload for t in rest if networks(t) & set(members)}
        if not test_workloads:
            continue  # the family is not collected yet: no fold
        splits[f"fold-{family}"] = split_by_predicate(
            "family-fold", {"protocol": protocol.name, "family": family, "held_out": list(members)}, rest,
            lambda t, w=test_workloads: t.workload in w)
    return splits


def write_protocol_splits(splits: dict[str, dict], out_dir: str | os.PathLike) -> list[Path]:
    out = Path(out_dir)
    paths = []
    for stem, split in splits.items():
        write_split(split, out / f"{stem}.json")
        paths.append(out / f"{stem}.json")
    return paths
