"""YAML workload suites: named collections of operators and networks for data collection.

Format (configs/workloads/*.yaml):

    name: cnn-suite                 # required
    description: free text          # optional
    operators: [C2D-0, matmul, my_op.py]   # built-in operator names, or .py TVMScript files
                                           # (relative paths resolve against the YAML's folder)
    networks:
      - name: resnet18
        batch_sizes: [1, 8]         # optional, default [1]

Tasks that are structurally equal across sources (e.g. a conv shared by two ResNets) are merged
into one Task: tags lists every source, weights[tag] keeps each source's own weight, and weight is
their sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import tvm
import tvm_ffi
import yaml

from ..errors import UserError
from .networks import list_networks, network_tag, network_tasks
from .operators import list_operators, operator_task
from .task import Task
from .tvmscript_file import load_tvmscript_file

# configs/workloads inside the package (see config.CONFIG_DIR), where suites are found by bare name.
SUITES_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"

_SUITE_KEYS = {"name", "description", "operators", "networks"}
_NETWORK_KEYS = {"name", "batch_sizes"}


class SuiteError(UserError):
    """A suite file is malformed; the message names the file and the offending key or entry."""


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(path_or_name: str | Path, target: tvm.target.Target) -> list[Task]:
    """All tasks of a suite, structurally equal tasks merged (see module docstring)."""
    path = resolve_suite_path(path_or_name)
    spec = _parse(path)
    tasks: list[Task] = []
    for entry in spec.get("operators", []):
        tasks.append(_operator_entry_task(entry, path))
    for network in spec.get("networks", []):
        for batch_size in network.get("batch_sizes", [1]):
            tasks.extend(network_tasks(network["name"], target, batch_size))
    return merge_duplicate_tasks(tasks)


def merge_duplicate_tasks(tasks: Iterable[Task]) -> list[Task]:
    """Merge structurally equal tasks, keeping the first one's name and the order of first appearance.

    Inputs are not modified. Hashing buckets the candidates; structural_equal confirms, so a hash
    collision can never merge different programs.
    """
    merged: list[Task] = []
    by_hash: dict[int, list[Task]] = {}
    for task in tasks:
        bucket = by_hash.setdefault(tvm_ffi.structural_hash(task.mod), [])
        twin = next((kept for kept in bucket if tvm_ffi.structural_equal(kept.mod, task.mod)), None)
        if twin is None:
            kept = Task(task.name, task.mod, task.weight, task.tags, dict(task.weights))
            bucket.append(kept)
            merged.append(kept)
        else:
            _absorb(twin, task)
    return merged


def _absorb(kept: Task, duplicate: Task) -> None:
    kept.tags = kept.tags + tuple(t for t in duplicate.tags if t not in kept.tags)
    for tag, weight in duplicate.weights.items():
        kept.weights[tag] = kept.weights.get(tag, 0.0) + weight
    kept.weight = kept.weight + duplicate.weight


def _operator_entry_task(entry: str, suite_path: Path) -> Task:
    if entry.endswith(".py"):
        file = Path(entry) if Path(entry).is_absolute() else suite_path.parent / entry
        return Task.from_source(file.stem, load_tvmscript_file(file), source=file.stem)
    return operator_task(entry)


def resolve_suite_path(path_or_name: str | Path) -> Path:
    """An existing file path, else a suite in SUITES_DIR named by its bare name ("ci-tiny" or "ci-tiny.yaml")."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    named = SUITES_DIR / f"{path.stem}.yaml"
    if path.parent == Path(".") and path.suffix in ("", ".yaml") and named.is_file():
        return named
    raise SuiteError(f"suite file not found: {path} (suites in {SUITES_DIR}: {', '.join(list_suites())})")


def _parse(path: Path) -> dict:
    """Load and validate a suite file, raising SuiteError that names the file and the bad key."""
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: invalid YAML: {err}") from err

    def fail(msg: str):
        raise SuiteError(f"{path}: {msg}")

    if not isinstance(spec, dict):
        fail(f"top level must be a mapping, got {type(spec).__name__}")
    if unknown := set(spec) - _SUITE_KEYS:
        fail(f"unknown key(s) {sorted(unknown)}; allowed keys: {sorted(_SUITE_KEYS)}")
    if not isinstance(spec.get("name"), str):
        fail("'name' (a string) is required")

    operators = spec.get("operators", [])
    if not isinstance(operators, list) or not all(isinstance(op, str) for op in operators):
        fail("'operators' must be a list of strings")
    valid_operators = set(list_operators())
    for op in operators:
        if not op.endswith(".py") and op not in valid_operators:
            fail(f"operators: unknown operator {op!r}; valid: {', '.join(list_operators())}, or a .py file")

    networks = spec.get("networks", [])
    if not isinstance(networks, list):
        fail("'networks' must be a list of {name, batch_sizes} mappings")
    for i, network in enumerate(networks):
        where = f"networks[{i}]"
        if not isinstance(network, dict):
            fail(f"{where} must be a mapping with keys {sorted(_NETWORK_KEYS)}")
        if unknown := set(network) - _NETWORK_KEYS:
            fail(f"{where}: unknown key(s) {sorted(unknown)}; allowed keys: {sorted(_NETWORK_KEYS)}")
        if network.get("name") not in list_networks():
            fail(f"{where}: unknown network {network.get('name')!r}; valid: {', '.join(list_networks())}")
        batch_sizes = network.get("batch_sizes", [1])
        if not isinstance(batch_sizes, list) or not all(isinstance(b, int) and b >= 1 for b in batch_sizes):
            fail(f"{where}: 'batch_sizes' must be a list of positive integers, got {batch_sizes!r}")
        tags = [network_tag(network["name"], b) for b in batch_sizes]
        if len(set(tags)) != len(tags):
            fail(f"{where}: duplicate batch sizes {batch_sizes}")
    return spec
