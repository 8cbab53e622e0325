"""What a new user meets first: today's pytest, a wheel install, the README snippet, bad input, killed runs.

Each test here failed before the fix it names (issue "A fresh machine passes"); all of them use real
files and real (tiny) tuning or collection runs.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from tvm.s_tir import meta_schedule as ms

from cdmpp_tvm import CDMPPCostModel
from cdmpp_tvm.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cdmpp_tvm.cli import main
from cdmpp_tvm.data import RECORD_FILE, WORKLOAD_FILE, CollectConfig, collect, read_database, task_dir_name
from cdmpp_tvm.data.feature_cache import CACHE_FILE, featurize_database, load_cached_features
from cdmpp_tvm.model import ModelConfig
from cdmpp_tvm.tuning import tune
from cdmpp_tvm.workloads import load_workload

REPO = Path(__file__).resolve().parents[1]
METASCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"


def _copy_database(collected, tmp_path, index: int = 0) -> Path:
    out, tasks, _ = collected
    db = tmp_path / "db"
    shutil.copytree(out / task_dir_name(tasks[index]), db)
    return db


def _tiny_tune(target, work_dir, cost_model, trials: int = 8):
    return tune(load_workload("matmul-small", target), target, trials, str(work_dir), cost_model, trials_per_iter=4,
                population_size=32, progress=False)


# ------------------------------------------------------------------ 1. MetaSchedule's logger setup

class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_tuning_survives_unnamed_and_named_handlers_on_the_metaschedule_logger(host_target, tmp_path):
    logger = logging.getLogger(METASCHEDULE_LOGGER)
    unnamed, named = _ListHandler(), _ListHandler()
    named.set_name("users-own-handler")
    logger.addHandler(unnamed)
    logger.addHandler(named)
    try:
        # MetaSchedule's own setup, as every tuning call runs it: crashed on both handlers before.
        ms.logging.get_loggers_from_work_dir(str(tmp_path / "setup"), ["a"])
        result = _tiny_tune(host_target, tmp_path / "tune", CDMPPCostModel(checkpoint="scratch"))
        assert result.tasks[0].best_latency_s is not None
        # The user's handlers are still attached, and still receive MetaSchedule's records.
        assert unnamed in logger.handlers and named in logger.handlers
        logger.warning("a record after tuning")
        assert unnamed.records[-1].getMessage() == named.records[-1].getMessage() == "a record after tuning"
    finally:
        logger.removeHandler(unnamed)
        logger.removeHandler(named)


def test_resuming_a_tuning_work_dir_with_a_torn_last_line(host_target, tmp_path, caplog):
    work = tmp_path / "tune"
    _tiny_tune(host_target, work, CDMPPCostModel(checkpoint="scratch"), trials=4)
    records = work / RECORD_FILE
    text = records.read_text()
    records.write_text(text + text.splitlines()[0][:40])  # a kill in the middle of writing a record
    with caplog.at_level(logging.WARNING, logger="cdmpp_tvm"):
        result = _tiny_tune(host_target, work, CDMPPCostModel(checkpoint="scratch"), trials=4)
    assert result.tasks[0].trials >= 4
    assert f"{records}:{len(text.splitlines()) + 1}: torn last line" in caplog.text
    (backup,) = work.glob(f"{RECORD_FILE}.torn-*")
    assert backup.read_text().startswith(text)
    assert all(json.loads(line) for line in records.read_text().splitlines())


# ------------------------------------------------------------------ 2. CI tests what a new user gets

def test_ci_runs_the_readme_test_command_in_a_fresh_venv():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    (test_command,) = re.findall(r"^(pip install .*pytest.*)$", readme, flags=re.M)
    install, test = (part.strip() for part in test_command.split("&&"))
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.strip().startswith("#")]
    venv_at = next(i for i, line in enumerate(lines) if "-m venv" in line)
    install_at = next(i for i, line in enumerate(lines) if line.endswith(install.removeprefix("pip ")))
    test_at = lines.index(test)
    assert venv_at < install_at < test_at
    # The install and the tests run with the fresh venv's python, not the machine's.
    assert any("activate" in line for line in lines[venv_at:install_at + 1])


# ------------------------------------------------------------------ 3. a wheel works outside the checkout

def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Build the wheel, install it into a new venv (dependencies: this environment's, through a .pth
    file; the package itself only from the wheel) and run `collect --suite` and `train` from another
    directory: both read package data (suite and training configs)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("cdmpp_tvm-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Lines of a .pth file are added to sys.path, but .pth files found there are not run: this
    # environment's editable install of cdmpp-tvm stays invisible to the new venv.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def cli(*args):
        code = ("import sys; from cdmpp_tvm.cli import main; import cdmpp_tvm; "
                "print('package at', cdmpp_tvm.__file__, flush=True); sys.exit(main(sys.argv[1:]))")
        return subprocess.run([str(python), "-c", code, *args], cwd=run_dir, env=env, capture_output=True, text=True)

    collected = cli("collect", "--suite", "ci-tiny", "--out", "data", "--random", "4", "--evolutionary", "0",
                    "--min-repeat-ms", "5")
    assert collected.returncode == 0, collected.stderr[-2000:]
    assert f"package at {site}" in collected.stdout
    trained = cli("train", "--epochs", "1", "--database", "data", "--out", "model.pt", "--no-progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert load_checkpoint(run_dir / "model.pt").info["n_programs"] > 0


# ------------------------------------------------------------------ 4. feature caches key on every input

def test_feature_cache_made_without_the_workload_file_is_not_kept(collected, tmp_path):
    db = _copy_database(collected, tmp_path)
    workloads = (db / WORKLOAD_FILE).read_bytes()
    (db / WORKLOAD_FILE).unlink()
    featurize_database(db, progress=False)  # nothing can be read: an empty cache
    (db / WORKLOAD_FILE).write_bytes(workloads)
    features, _ = load_cached_features([db], progress=False)
    assert len(features) == read_database(db).n_valid > 0
    # An empty cache of a database with records is never fresh, whatever its digest says.
    empty = dict(np.load(db / CACHE_FILE))
    empty.update(latency_s=np.zeros(0), task_key=np.zeros(0, dtype=str), record_id=np.zeros(0, dtype=str))
    np.savez_compressed(db / CACHE_FILE, **empty)
    features, _ = load_cached_features([db], progress=False)
    assert len(features) > 0


# ------------------------------------------------------------------ 5. collect: resume, counts, torn lines

def _kill_after_first_batch(work: Path) -> None:
    """Make a finished one-batch random phase look like a run killed after its first batch: the
    database holds the batch, task.json the state a kill leaves (phase not done, nothing counted)."""
    state = json.loads((work / "task.json").read_text())
    state["phases"]["random"]["done"] = False
    state["status"], state["valid"], state["build_failed"], state["run_failed"] = "running", 0, 0, 0
    (work / "task.json").write_text(json.dumps(state))


def test_collect_resumed_after_a_kill_draws_new_programs_and_counts_from_the_database(host_target, tmp_path,
                                                                                       caplog):
    tasks = load_workload("matmul-small", host_target)
    work = tmp_path / task_dir_name(tasks[0])
    first = CollectConfig(random_trials=4, evolutionary_trials=0, trials_per_iter=4, min_repeat_ms=5)
    collect(tasks, host_target, tmp_path, first, progress=False)
    _kill_after_first_batch(work)
    records = work / RECORD_FILE
    text = records.read_text()
    records.write_text(text + '[0, [[["Sample')  # and the kill tore the record being written
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["tasks"] = {}  # the killed task had not reached the manifest
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    resumed = CollectConfig(random_trials=8, evolutionary_trials=0, trials_per_iter=4, min_repeat_ms=5)
    with caplog.at_level(logging.WARNING, logger="cdmpp_tvm"):
        manifest = collect(tasks, host_target, tmp_path, resumed, progress=False)
    assert f"{records}:5: torn last line" in caplog.text and list(work.glob(f"{RECORD_FILE}.torn-*"))
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(lines) == 8
    traces = [json.dumps(rec[1][0], sort_keys=True) for rec in lines]
    assert len(set(traces[4:]) - set(traces[:4])) >= 2, "the resumed batch re-measured the killed run's programs"
    state = json.loads((work / "task.json").read_text())
    valid = sum(1 for rec in lines if 0 < float(np.median(rec[1][1])) < 1e9)
    assert state["records"] == 8 and state["valid"] == valid == manifest["totals"]["valid"]
    assert state["phases"]["random"]["attempts"] == 2


# ------------------------------------------------------------------ 6. invalid latencies name file:line

@pytest.mark.parametrize("run_secs", [[-0.001], [0.0], [0.001, 0.0]])
def test_reader_reports_invalid_latencies_with_file_and_line(collected, tmp_path, run_secs):
    db = _copy_database(collected, tmp_path)
    lines = (db / RECORD_FILE).read_text().splitlines()
    record = json.loads(lines[1])
    record[1][1] = run_secs
    lines[1] = json.dumps(record)
    (db / RECORD_FILE).write_text("\n".join(lines) + "\n")
    report = read_database(db)
    (problem,) = report.problems
    assert problem.startswith(f"{db / RECORD_FILE}:2: invalid latency")
    assert len(report.records) == len(lines) - 1


# ------------------------------------------------------------------ 7. one line and exit code 2 for user errors

def _cli_error(capsys, *args) -> str:
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_user_errors_are_one_line_with_exit_code_2(collected, tmp_path, capsys):
    assert "'no-such-op'" in _cli_error(capsys, "tune", "--workload", "no-such-op")
    assert "--target '{\"kind\": llvm'" in _cli_error(capsys, "tune", "--target", '{"kind": llvm')
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert str(blocker / "work") in _cli_error(capsys, "tune", "--workload", "matmul-small", "--trials", "4",
                                               "--work-dir", str(blocker / "work"))
    script = tmp_path / "broken.py"
    script.write_text("from tvm.script import tirx as T\n@T.prim_func(\ndef f(:\n")
    assert f"{script}: Python syntax error" in _cli_error(capsys, "tune", "--workload", str(script))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert str(garbage) in _cli_error(capsys, "tune", "--workload", "matmul-small", "--checkpoint", str(garbage))
    assert str(garbage) in _cli_error(capsys, "predict-network", "--network", "lstm", "--checkpoint", str(garbage))
    out, _, _ = collected
    assert str(garbage) in _cli_error(capsys, "train", "--database", str(out), "--epochs", "1", "--out",
                                      str(tmp_path / "m.pt"), "--resume-state", str(garbage), "--no-progress")
    for model, what in (("d_model: big", "d_model"), ("d_model: 64\nn_heads: 5", "n_heads")):
        config = tmp_path / "train.yaml"
        config.write_text(f"model:\n  {model.replace(chr(10), chr(10) + '  ')}\nepochs: 1\n")
        message = _cli_error(capsys, "train", "--config", str(config), "--database", str(out), "--out",
                             str(tmp_path / "m.pt"))
        assert str(config) in message and what in message
    for trials in ("0", "-5"):
        with pytest.raises(SystemExit) as exit_info:
            main(["tune", "--trials", trials])
        assert exit_info.value.code == 2 and "--trials: must be an integer >= 1" in capsys.readouterr().err


def test_model_config_validates_like_train_config():
    for bad in ({"d_model": "big"}, {"n_heads": 5}, {"n_layers": 0}, {"dropout": 1.5}, {"regressor_hidden": [0]}):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    assert ModelConfig(d_model=64, n_heads=8).d_model == 64


# ------------------------------------------------------------------ 8. NaN never enters a model or a file

def test_nan_online_loss_is_a_counted_fallback_and_nan_weights_are_never_saved(host_target, tmp_path):
    cost_model = CDMPPCostModel(checkpoint="scratch")
    with torch.no_grad():
        cost_model.model.regressor[-1].bias.fill_(math.nan)  # every prediction and every loss is NaN
    _tiny_tune(host_target, tmp_path / "tune", cost_model)
    stats = cost_model.stats()
    assert stats["online_steps"] == 0 and stats["online_nonfinite_losses"] >= 1
    assert stats["fallbacks"] >= stats["online_nonfinite_losses"] + stats["predict_fallbacks"]
    # save() is called through TVM's FFI, which re-raises the CheckpointError as a RuntimeError.
    with pytest.raises((CheckpointError, RuntimeError), match="not written: the model has non-finite"):
        cost_model.save(str(tmp_path / "nan.pt"))
    assert not (tmp_path / "nan.pt").exists()
    # A checkpoint with NaN weights written by something else is refused when loaded.
    good = tmp_path / "good.pt"
    save_checkpoint(good, CDMPPCostModel(checkpoint="scratch").model, cost_model._ckpt.label_transform,
                    {"name": "test"})
    payload = torch.load(good, weights_only=True)
    next(v for v in payload["state_dict"].values() if v.is_floating_point()).fill_(math.nan)
    torch.save(payload, tmp_path / "poisoned.pt")
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(tmp_path / "poisoned.pt")


# ------------------------------------------------------------------ 9. the README's snippet is the fast path

def test_readme_snippet_runs_as_written_with_the_fast_builder(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    assert "builder=make_builder()" in snippet and "register_tensor_intrinsics(target)" in snippet
    assert "host_target()" in snippet
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    records = namespace["database"].get_all_tuning_records()
    assert len(records) >= 16 and namespace["target"].attrs["mcpu"]
