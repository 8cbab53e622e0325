import importlib.util
import logging
from pathlib import Path

import pytest

from cdmpp_tvm.data import CollectConfig, collect
from cdmpp_tvm.workloads import load_suite
from tvm_patches.host_target import host_target as _host_target
from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics


@pytest.fixture(scope="session")
def load_benchmark_script():
    """``load(name)`` imports ``benchmarks/<name>.py`` (scripts, not a package) as a module."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def host_target():
    quiet_metaschedule_logging()
    logging.getLogger("cdmpp_tvm").setLevel(logging.INFO)
    target = _host_target()
    register_tensor_intrinsics(target)
    return target


TINY_COLLECT = CollectConfig(random_trials=4, evolutionary_trials=4, trials_per_iter=4, population_size=32,
                             min_repeat_ms=5)


@pytest.fixture(scope="session")
def collected(tmp_path_factory, host_target):
    """A real collection of the ci-tiny suite (2 tasks x 4 + 4 programs): (out dir, tasks, manifest).
    Tests that change its files work on a copy."""
    out = tmp_path_factory.mktemp("collected")
    tasks = load_suite("ci-tiny", host_target)
    manifest = collect(tasks, host_target, out, TINY_COLLECT, progress=False)
    return out, tasks, manifest
