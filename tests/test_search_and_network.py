"""Search benchmark harness and network latency prediction, with real tuning on tiny budgets."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tvm.s_tir import meta_schedule as ms

from cdmpp_tvm.model.checkpoint import load_checkpoint
from cdmpp_tvm.network_latency import measure_network_latency, predict_network_latency
from cdmpp_tvm.bench import SearchBenchConfig, best_at, plot_curves, run_benchmark
from cdmpp_tvm.workloads import load_workload

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench(tmp_path_factory, host_target):
    out = tmp_path_factory.mktemp("bench")
    tasks = load_workload("matmul-small", host_target)
    cfg = SearchBenchConfig(models=("cdmpp", "xgb"), trials=16, trials_per_iter=8, population_size=64, seeds=(0,),
                            budgets=(8, 16))
    return out, tasks, cfg, run_benchmark(tasks, host_target, cfg, out, progress=False)


def test_search_benchmark_two_models_one_task(bench):
    out, tasks, cfg, report = bench
    assert {r["model"] for r in report["runs"]} == {"cdmpp", "xgb"}
    for run in report["runs"]:
        assert run["trials"] == 16
        trials = [n for n, _ in run["curve"]]
        assert trials == [8, 16]
        bests = [b for _, b in run["curve"] if b is not None]
        assert bests and all(a >= b for a, b in zip(bests, bests[1:])), "best-so-far must never get worse"
        split = run["time_split_s"]
        assert all(v >= 0 for v in split.values())
        assert split["build"] > 0 and split["run"] > 0
        assert sum(split.values()) == pytest.approx(run["wall_s"], rel=0.05)
        db_lines = (out / "runs" / run["model"]).rglob("database_tuning_record.json")
        assert sum(len(p.read_text().splitlines()) for p in db_lines) == 16
    cdmpp = next(r for r in report["runs"] if r["model"] == "cdmpp")
    assert cdmpp["time_split_s"]["featurize"] > 0 and cdmpp["cost_model_stats"]["candidates_scored"] > 0
    speedup = report["summary"]["speedup"]["16"]["xgb"]
    xgb = next(r for r in report["runs"] if r["model"] == "xgb")
    assert speedup == pytest.approx(best_at(xgb["curve"], 16) / best_at(cdmpp["curve"], 16))
    # Per task: the best at each budget, and the first trial count where cdmpp reaches xgb's final best.
    row, = report["summary"]["per_task"]
    assert row["best_s"]["xgb"]["8"] == pytest.approx(best_at(xgb["curve"], 8))
    assert row["tunable"] == (cdmpp["trials"] == xgb["trials"] == 16)
    assert report["summary"]["tunable"]["n_tasks"] == int(row["tunable"])
    reached, = row["cdmpp_trials_to_match_xgb"]
    earlier = [n for n, b in cdmpp["curve"] if b is not None and b <= best_at(xgb["curve"], 16)]
    assert reached == (earlier[0] if earlier else None)
    for name in ("results.json", "results.csv", "summary.md", "search_total.png"):
        assert (out / name).stat().st_size > 0
    assert len(list(out.glob("search_*.png"))) == 2
    assert "vs xgb" in (out / "summary.md").read_text()


def test_search_benchmark_resumes_a_killed_run_from_its_database(bench, host_target):
    out, tasks, cfg, report = bench
    run_dir = next((out / "runs" / "xgb").rglob("seed0"))
    before = json.loads((run_dir / "result.json").read_text())
    # A run killed after its last batch was stored: no result.json, curve lost; the database survives.
    (run_dir / "result.json").unlink()
    (run_dir / "curve.jsonl").unlink()
    again = run_benchmark(tasks, host_target, cfg, out, progress=False)
    resumed = next(r for r in again["runs"] if r["model"] == "xgb")
    assert resumed["resumed_from"] == 16 and resumed["trials"] == 16
    assert resumed["best_s"] == pytest.approx(before["best_s"])
    # The replayed curve follows measurement order (not the database's latency order).
    assert best_at(resumed["curve"], 8) == pytest.approx(best_at(before["curve"], 8))
    # The finished cdmpp run is skipped, not re-run.
    assert next(r for r in again["runs"] if r["model"] == "cdmpp")["wall_s"] == \
        next(r for r in report["runs"] if r["model"] == "cdmpp")["wall_s"]


def test_search_benchmark_report_only_covers_tasks_every_model_finished(bench, host_target, tmp_path):
    out, tasks, cfg, report = bench
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    on_disk = json.loads((out / "results.json").read_text())  # the last full run's report
    full = run_benchmark(tasks, host_target, cfg, copy, progress=False, run_missing=False)
    assert full["missing_tasks"] == [] and len(full["runs"]) == len(report["runs"])
    assert full["summary"]["speedup"] == on_disk["summary"]["speedup"]
    # An unfinished run (no result.json) takes its task out of the comparison and nothing is tuned.
    next((copy / "runs" / "xgb").rglob("result.json")).unlink()
    partial = run_benchmark(tasks, host_target, cfg, copy, progress=False, run_missing=False)
    assert partial["tasks"] == [] and partial["missing_tasks"] == [t.name for t in tasks]
    assert partial["runs"] == [] and not list((copy / "runs" / "xgb").rglob("result.json"))
    # ... but the finished cdmpp run of that task stays in results.json, outside every statistic.
    assert [r["model"] for r in partial["runs_of_missing_tasks"]] == ["cdmpp"]
    assert json.loads((copy / "results.json").read_text())["runs_of_missing_tasks"][0]["curve"]
    assert "Partial" in (copy / "summary.md").read_text() and "runs_of_missing_tasks" in (copy / "summary.md").read_text()


def test_search_overview_tabulates_networks_and_bounds_the_speedup_by_the_headroom(bench, tmp_path):
    out, _, _, report = bench
    script = REPO / "benchmarks" / "search_overview.py"
    subprocess.run([sys.executable, str(script), str(out), "--name", "t", "--out-dir", str(tmp_path)],
                   check=True, timeout=120)
    (row,) = json.loads((tmp_path / "t-overview.json").read_text())["networks"]
    assert row["speedup"] == report["summary"]["tunable"]["speedup"]
    for budget, bases in row["speedup"].items():
        # cdmpp's best is one of the programs found, so its speedup over xgb can never exceed the headroom.
        assert bases["xgb"] <= row["xgb_headroom"][budget] + 1e-12
        assert row["speedup_per_seed"][budget]["xgb"] == pytest.approx([bases["xgb"]])
    assert "## cdmpp vs xgb" in (tmp_path / "t-overview.md").read_text() and (tmp_path / "t-overview.png").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{")
    run = subprocess.run([sys.executable, str(script), str(bad), "--name", "t", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "results.json" in run.stderr and run.stderr.count("\n") == 1


def test_search_overview_bootstrap_interval_holds_the_geomean_and_widens_with_the_spread(load_benchmark_script):
    overview = load_benchmark_script("search_overview")
    narrow = [1.2, 1.25, 1.3, 1.22, 1.28, None]
    wide = [0.8, 1.9, 1.0, 1.6, 1.1, 1.5]
    lo, hi = overview.bootstrap_geomean_interval(narrow)
    assert lo < float(np.exp(np.mean(np.log(narrow[:-1])))) < hi
    assert 1.2 <= lo and hi <= 1.3
    wide_lo, wide_hi = overview.bootstrap_geomean_interval(wide)
    assert wide_hi - wide_lo > hi - lo
    assert overview.bootstrap_geomean_interval([1.4, None]) is None
    assert overview.bootstrap_geomean_interval([1.1, 1.1]) == [pytest.approx(1.1)] * 2


def test_search_plots_of_tasks_with_a_long_common_prefix_do_not_overwrite_each_other(tmp_path):
    # Fused ResNet-18 tasks share their first 80 characters (..._add2_relu1 / ..._add2_add3_relu1).
    stem = "resnet18.fused_conv2d1_subtract1_divide1_expand_dims_multiply1_expand_dims_add2_"
    names = [stem + "relu1", stem + "add3_relu1"]
    runs = [{"model": "cdmpp", "task": n, "seed": 0, "weight": 1.0, "curve": [[8, 1e-3], [16, 5e-4]]} for n in names]
    report = {"config": {"models": ["cdmpp"], "seeds": [0], "trials": 16}, "tasks": names, "runs": runs}
    written = plot_curves(report, tmp_path)
    assert len(set(written)) == 3 and all(p.stat().st_size > 0 for p in written)
    assert len(list(tmp_path.glob("search_*.png"))) == 3


TRANSPOSE_SCRIPT = """
from tvm.script import tirx as T


@T.prim_func(s_tir=True)
def transpose(A: T.Buffer((64, 32), "float32"), B: T.Buffer((32, 64), "float32")):
    T.func_attr({"tirx.noalias": True})
    for i, j in T.grid(32, 64):
        with T.sblock("B"):
            v_i, v_j = T.axis.remap("SS", [i, j])
            B[v_i, v_j] = A[v_j, v_i]
"""


def test_cli_bench_search_skips_single_program_tasks(tmp_path, capsys):
    """A transpose has one program: --skip-single-program leaves it out, and with nothing left to tune
    the command says so (exit 2) before tuning or writing anything."""
    from cdmpp_tvm.cli import main

    script = tmp_path / "transpose.py"
    script.write_text(TRANSPOSE_SCRIPT)
    out = tmp_path / "bench"
    argv = ["bench-search", "--workload", str(script), "--models", "random", "--trials", "4", "--seeds", "0",
            "--out", str(out), "--skip-single-program"]
    assert main(argv) == 2
    err = capsys.readouterr()
    assert "Skipping 1 single-program task(s)" in err.out and "left no task to tune" in err.err
    assert not out.exists()


def test_dlight_reference_schedules_a_cuda_task_and_compares_it_with_the_runs(bench, tmp_path, capsys):
    """DLight's GPU rules schedule a CUDA matmul without a GPU (measuring it needs one: issue 19's
    bench-search --dlight-reference); the comparison is DLight's latency / each run's best within the
    budget; on a CPU target the flag is one clear error (exit 2) before anything is tuned."""
    import tvm

    from cdmpp_tvm.bench.dlight_reference import dlight_comparison, dlight_markdown, dlight_schedule
    from cdmpp_tvm.cli import main
    from cdmpp_tvm.device import KNOWN_DEVICES

    target = tvm.target.Target(KNOWN_DEVICES["nvidia-h200"].target)
    rule, mod = dlight_schedule(load_workload("matmul-small", target)[0], target)
    assert rule == "Matmul" and "threadIdx.x" in mod.script()

    out, tasks, cfg, report = bench
    best16 = {r["model"]: best_at(r["curve"], 16) for r in report["runs"]}
    reference = {tasks[0].name: {"rule": "Matmul", "latency_s": 2 * best16["cdmpp"]},
                 "a task without runs": {"rule": None, "error": "no DLight GPU rule applies"}}
    comparison = dlight_comparison(reference, report["runs"], cfg.budgets)
    assert comparison["cdmpp"][16] == pytest.approx(2.0)
    assert comparison["xgb"][16] == pytest.approx(2 * best16["cdmpp"] / best16["xgb"])
    text = dlight_markdown(reference, comparison)
    assert "| cdmpp | " in text and "no DLight GPU rule applies" in text

    argv = ["bench-search", "--workload", "matmul-small", "--models", "random", "--trials", "4", "--seeds", "0",
            "--out", str(tmp_path / "bench"), "--dlight-reference"]
    assert main(argv) == 2
    assert "--dlight-reference needs a CUDA target" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()


def test_predict_network_uses_measured_records_and_samples_the_rest(host_target, tmp_path):
    ckpt = load_checkpoint("llvm-cpu")
    sampled = predict_network_latency("dcgan_generator", host_target, ckpt, samples=8)
    assert len(sampled.tasks) >= 3 and all(t.source == "sampled" for t in sampled.tasks)
    assert all(t.predicted_s > 0 for t in sampled.tasks)
    assert sampled.predicted_s == pytest.approx(sum(t.weight * t.predicted_s for t in sampled.tasks))

    # A database holding a "measured" record of the first task: it must be found by workload and used.
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    database = ms.database.JSONDatabase(work_dir=str(db_dir))
    rec = sampled._records[0]
    database.commit_tuning_record(ms.database.TuningRecord(rec.trace, database.commit_workload(rec.workload.mod),
                                                           [1.5e-3, 1.5e-3, 1.5e-3], host_target, rec.args_info))
    mixed = predict_network_latency("dcgan_generator", host_target, ckpt, [str(db_dir)], samples=8)
    first = mixed.tasks[0]
    assert first.source == "measured" and first.measured_s == pytest.approx(1.5e-3)
    assert [t.source for t in mixed.tasks[1:]] == ["sampled"] * (len(mixed.tasks) - 1)

    measured = measure_network_latency(sampled, host_target, repeat=2, min_repeat_ms=20)
    assert np.isfinite(measured) and measured > 0


def test_cli_predict_network_writes_json(tmp_path):
    out = tmp_path / "pred.json"
    proc = subprocess.run([sys.executable, "-m", "cdmpp_tvm.cli", "predict-network", "--network", "dcgan_generator",
                           "--samples", "4", "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["predicted_s"] > 0 and result["network"] == "dcgan_generator"
    assert "Predicted dcgan_generator latency" in proc.stdout
