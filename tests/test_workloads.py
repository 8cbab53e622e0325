"""Tests for cdmpp_tvm.workloads against the real TVM (resnet18 extraction is the slow one, ~15 s)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tvm
import tvm_ffi
from tvm import tirx

from cdmpp_tvm.workloads import (
    SuiteError,
    Task,
    WorkloadFileError,
    list_networks,
    list_workloads,
    load_suite,
    load_tvmscript_file,
    load_workload,
)
from cdmpp_tvm.workloads.suite import SUITES_DIR, merge_duplicate_tasks

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "workloads" / "example_matmul.py"

MATMUL_64 = """
from tvm.script import tirx as T


@T.prim_func(s_tir=True)
def {name}(A: T.Buffer((64, 64), "float32"), B: T.Buffer((64, 64), "float32"), C: T.Buffer((64, 64), "float32")):
    T.func_attr({{"tirx.noalias": True}})
    for i, j, k in T.grid(64, 64, 64):
        with T.sblock("C"):
            v_i, v_j, v_k = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[v_i, v_j] = T.float32(0.0)
            C[v_i, v_j] = C[v_i, v_j] + A[v_i, v_k] * B[v_k, v_j]
"""


@pytest.fixture(scope="module")
def target():
    return tvm.target.Target({"kind": "llvm", "num-cores": 2, "mcpu": tvm.target.codegen.llvm_get_system_cpu()})


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------------------- operators


def test_every_builtin_operator_loads(target):
    operators = [name for name in list_workloads() if name not in list_networks()]
    assert {"matmul", "matmul-small", "conv2d", "conv2d-small", "C2D-0", "SFM-3"} <= set(operators)
    assert not any(name.startswith("C2D_WIN_NHWC") for name in operators)
    for name in operators:
        (task,) = load_workload(name, target)
        assert task.name == name and task.tags == (name,) and task.weights == {name: 1.0}
        assert isinstance(task.mod["main"], tirx.PrimFunc)


def test_unknown_workload_lists_valid_names(target):
    with pytest.raises(ValueError, match="valid names:.*matmul-small.*resnet18"):
        load_workload("no-such-op", target)


def test_package_import_does_not_import_torch_models():
    # `import tvm` itself pulls in torch through tvm_ffi, so check our own torch module stays unloaded.
    code = "import sys, cdmpp_tvm.workloads; assert 'cdmpp_tvm.workloads.torch_models' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------------------------------- TVMScript files


def test_example_tvmscript_file_loads(target):
    mod = load_tvmscript_file(EXAMPLE)
    assert isinstance(mod["main"], tirx.PrimFunc)
    (task,) = load_workload(str(EXAMPLE), target)
    assert task.name == "example_matmul" and tvm_ffi.structural_equal(task.mod, mod)


def test_ir_module_class_file_loads(tmp_path):
    text = MATMUL_64.format(name="main").replace("from tvm.script import tirx as T", "from tvm.script import ir as I, tirx as T")
    body = textwrap.indent(text.split("\n\n\n", 1)[1], "    ")
    path = _write(tmp_path / "module.py", text.split("\n\n\n", 1)[0] + "\n\n\n@I.ir_module\nclass Module:\n" + body)
    assert isinstance(load_tvmscript_file(path)["main"], tirx.PrimFunc)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(WorkloadFileError, match="nope.py"):
        load_tvmscript_file(tmp_path / "nope.py")


def test_syntax_error_names_the_file(tmp_path):
    path = _write(tmp_path / "broken.py", "def f(:\n    pass\n")
    with pytest.raises(WorkloadFileError, match=r"broken\.py.*syntax error at line 1"):
        load_tvmscript_file(path)


def test_two_prim_funcs_name_the_file_and_functions(tmp_path):
    path = _write(tmp_path / "two.py", MATMUL_64.format(name="first") + MATMUL_64.format(name="second").split("\n\n\n", 1)[1])
    with pytest.raises(WorkloadFileError, match=r"two\.py.*found 2 \(first, second\)"):
        load_tvmscript_file(path)


def test_no_prim_func_names_the_file(tmp_path):
    path = _write(tmp_path / "empty.py", "x = 1\n")
    with pytest.raises(WorkloadFileError, match=r"empty\.py.*found 0"):
        load_tvmscript_file(path)


# ---------------------------------------------------------------------------------------- networks


def test_resnet18_extracts_tagged_weighted_tasks(target):
    tasks = load_workload("resnet18", target)
    assert len(tasks) > 10
    assert len({t.name for t in tasks}) == len(tasks)
    assert all(t.weight > 0 and t.tags == ("resnet18",) and t.name.startswith("resnet18.") for t in tasks)
    assert all(isinstance(t.mod["main"], tirx.PrimFunc) for t in tasks)
    assert any("conv2d" in t.name for t in tasks)
    assert sum(t.weight for t in tasks) > len(tasks)  # repeated blocks share a task with weight > 1


def test_network_definitions_match_registry():
    from cdmpp_tvm.workloads import torch_models

    assert set(torch_models.BUILDERS) == set(list_networks())


# ---------------------------------------------------------------------------------------- suites


def test_ci_tiny_suite_by_name(target):
    tasks = load_suite("ci-tiny", target)
    assert [t.name for t in tasks] == ["matmul-small", "conv2d-small"]


def test_shipped_suites_parse():
    from cdmpp_tvm.workloads.suite import _parse

    for path in SUITES_DIR.glob("*.yaml"):
        _parse(path)  # validation only: loading the networks suite takes minutes


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: s\noperatorz: [matmul]\n", r"bad\.yaml.*unknown key\(s\) \['operatorz'\]"),
        ("name: s\nnetworks:\n  - name: resnet18\n    batch: [1]\n", r"bad\.yaml.*networks\[0\].*unknown key\(s\) \['batch'\]"),
        ("name: s\noperators: [nope]\n", r"bad\.yaml.*unknown operator 'nope'"),
        ("name: s\nnetworks:\n  - name: resnet18\n    batch_sizes: [0]\n", r"bad\.yaml.*batch_sizes"),
        ("operators: [matmul]\n", r"bad\.yaml.*'name'"),
    ],
)
def test_suite_rejects_bad_files(tmp_path, target, text, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(_write(tmp_path / "bad.yaml", text), target)


def test_suite_merges_structurally_equal_tasks(tmp_path, target):
    # my_matmul.py is the same 64^3 matmul as the built-in matmul-small, under another name.
    _write(tmp_path / "my_matmul.py", MATMUL_64.format(name="mm"))
    suite = _write(tmp_path / "s.yaml", "name: s\noperators: [matmul-small, conv2d-small, my_matmul.py]\n")
    tasks = load_suite(suite, target)
    assert [t.name for t in tasks] == ["matmul-small", "conv2d-small"]
    assert tasks[0].tags == ("matmul-small", "my_matmul")
    assert tasks[0].weights == {"matmul-small": 1.0, "my_matmul": 1.0} and tasks[0].weight == 2.0


def test_merge_keeps_per_network_weights_and_leaves_inputs_alone():
    (mm,) = load_workload("matmul-small", None)
    a = Task.from_source("netA.mm", mm.mod, "netA", weight=3)
    b = Task.from_source("netB.mm", mm.mod, "netB", weight=2)
    (merged,) = merge_duplicate_tasks([a, b])
    assert merged.name == "netA.mm" and merged.tags == ("netA", "netB")
    assert merged.weights == {"netA": 3.0, "netB": 2.0} and merged.weight == 5.0
    assert a.tags == ("netA",) and a.weights == {"netA": 3.0}


# ---------------------------------------------------------------------------------------- network zoo


@pytest.mark.parametrize("name, out_shape", [("kws_dscnn", (1, 12)), ("conv_autoencoder", (1, 3, 96, 96)),
                                             ("dlrm", (1, 1))])
def test_zoo_small_networks_build_in_eval_mode_and_run(name, out_shape):
    import torch

    from cdmpp_tvm.workloads import torch_models

    model, inputs = torch_models.build(name, batch_size=1)
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        out = model(*inputs)
    assert tuple(out.shape) == out_shape and torch.isfinite(out).all()


def test_zoo_networks_registered_documented_and_in_suite_v2():
    from cdmpp_tvm.workloads import torch_models
    from cdmpp_tvm.workloads.suite import _parse
    from cdmpp_tvm.workloads.torch_zoo import ZOO_BUILDERS

    assert len(ZOO_BUILDERS) >= 24 and set(ZOO_BUILDERS) <= set(torch_models.BUILDERS)
    assert all(f.__doc__ and f.__doc__.strip() for f in ZOO_BUILDERS.values())
    spec = _parse(SUITES_DIR / "dataset-cpu-v2.yaml")
    at_batch_1 = {n["name"] for n in spec["networks"] if 1 in n.get("batch_sizes", [1])}
    assert set(ZOO_BUILDERS) <= at_batch_1


def test_task_cache_gives_the_same_tasks_and_is_rebuilt_when_a_suite_changes(tmp_path, monkeypatch):
    from cdmpp_tvm.workloads import task_cache

    target = tvm.target.Target({"kind": "llvm", "num-cores": 2})
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\noperators: [matmul-small, conv2d-small]\n")
    cache = tmp_path / "tasks.cache.json"
    fresh = task_cache.load_tasks_cached([str(suite)], target, cache)
    monkeypatch.setattr(task_cache, "load_tasks", lambda *a: pytest.fail("extracted again despite a valid cache"))
    cached = task_cache.load_tasks_cached([str(suite)], target, cache)
    assert [(t.name, t.tags, t.weights, t.weight) for t in cached] == [(t.name, t.tags, t.weights, t.weight)
                                                                     for t in fresh]
    assert all(tvm_ffi.structural_equal(a.mod, b.mod) for a, b in zip(fresh, cached))
    suite.write_text("name: s\noperators: [matmul-small]\n")  # another suite: the cache is stale
    monkeypatch.undo()
    assert [t.name for t in task_cache.load_tasks_cached([str(suite)], target, cache)] == ["matmul-small"]
