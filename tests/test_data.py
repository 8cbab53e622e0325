"""Data collection and reading: real measurements with tiny budgets."""
import json
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
from tvm.s_tir.meta_schedule.testing.local_rpc import LocalRPC

from cdmpp_tvm.data import (
    MANIFEST,
    RECORD_FILE,
    CollectConfig,
    RPCSettings,
    collect,
    find_databases,
    read_databases,
    task_dir_name,
)
from cdmpp_tvm.data.feature_cache import CACHE_FILE, load_cached_training_data
from cdmpp_tvm.data.layout import database_lines
from cdmpp_tvm.data.reader import latency_of
from cdmpp_tvm.workloads import load_workload

from conftest import TINY_COLLECT as TINY

def test_collect_two_tasks_end_to_end(collected, host_target):
    out, tasks, manifest = collected
    assert len(tasks) == 2
    assert manifest["totals"]["tasks"] == 2 and manifest["totals"]["records"] == 16
    t = manifest["totals"]
    assert t["valid"] + t["build_failed"] + t["run_failed"] == 16 and t["valid"] > 0
    assert manifest["target"]["mcpu"] == host_target.attrs["mcpu"]
    assert manifest["tvm_version"] == "0.27.0.post1" and manifest["settings"]["min_repeat_ms"] == 5
    for task in tasks:
        d = out / task_dir_name(task)
        state = json.loads((d / "task.json").read_text())
        assert state["status"] == "done" and state["tags"] == list(task.tags)
        assert state["phases"]["random"]["done"] and state["phases"]["evolutionary"]["done"]
        # The evolutionary phase's XGB learnt the random phase's programs before searching.
        assert state["phases"]["evolutionary"]["xgb_warm_start_programs"] == TINY.random_trials
    assert len(find_databases([out])) == 2
    (run,) = manifest["runs"]
    assert run["tasks"] == 2 and run["valid_records"] == t["valid"] and run["seconds"] > 0
    # Resume: everything is done, so nothing is measured again.
    again = collect(tasks, host_target, out, TINY, progress=False)
    assert again["last_run"]["tasks"] == 0 and again["totals"]["records"] == 16
    assert len(again["runs"]) == 2 and again["runs"][1]["tasks"] == 0 and again["runs"][1]["valid_records"] == 0


def test_data_card_counts_match_the_collection(collected, capsys):
    from cdmpp_tvm.cli import main
    from cdmpp_tvm.data.data_card import OPERATORS, summarize

    out, _, _ = collected
    manifest = json.loads((out / MANIFEST).read_text())
    s = summarize(manifest)
    # Both ci-tiny tasks are standalone operator workloads (their only tag is their own name).
    assert s["sources"] == {OPERATORS: {k: v for k, v in s["total"].items()}}
    assert s["total"]["valid"] == manifest["totals"]["valid"] and s["total"]["tasks"] == 2
    assert sum(r["valid"] for r in s["runs"]) == manifest["totals"]["valid"]
    assert main(["data-card", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"| {OPERATORS} | 2 | {manifest['totals']['valid']:,} |" in printed
    assert main(["data-card", str(out / "no-such-dir")]) == 2


def test_data_card_totals_count_tasks_once_across_roots_and_devices(collected, tmp_path, capsys):
    from cdmpp_tvm.cli import main

    out, tasks, manifest = collected
    # A second root: a task with valid records measured again on another CPU model (same workload, new mcpu).
    task = next(t for t in tasks
                if any(latency_of(rec[1]) for _, rec in database_lines(out / task_dir_name(t) / RECORD_FILE)))
    other = tmp_path / "other-cpu" / task_dir_name(task)
    shutil.copytree(out / task_dir_name(task), other)
    lines = database_lines(other / RECORD_FILE)
    for _, rec in lines:
        rec[2]["mcpu"] = "other-cpu"
    (other / RECORD_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    valid_copied = sum(latency_of(rec[1]) is not None for _, rec in lines)
    roots = [str(out), str(tmp_path / "other-cpu")]
    assert main(["data-card", "--totals", *roots, "--json", str(tmp_path / "t.json")]) == 0
    totals = json.loads((tmp_path / "t.json").read_text())
    assert totals["total"] == {"tasks": 2, "valid": manifest["totals"]["valid"] + valid_copied, "devices": 2}
    assert totals["devices"]["other-cpu"] == {"tasks": 1, "valid": valid_copied}
    assert f"| **all (distinct tasks)** | **2 devices** | **2** |" in capsys.readouterr().out
    assert main(["data-card", *roots]) == 2  # several roots need --totals


def test_reader_reports_corrupt_lines_and_counts_failures(collected, tmp_path):
    out, tasks, _ = collected
    src = out / task_dir_name(tasks[0])
    db = tmp_path / "damaged"
    shutil.copytree(src, db)
    lines = (db / RECORD_FILE).read_text().splitlines()
    good = json.loads(lines[0])
    failed = [good[0], [good[1][0], [1e10], good[1][2], good[1][3]]]
    lines[1] = lines[1][: len(lines[1]) // 2]  # truncated
    lines[2] = "not json at all"
    lines.insert(3, json.dumps([7, good[1]]))  # refers to a workload that does not exist
    lines.append(json.dumps(failed))
    (db / RECORD_FILE).write_text("\n".join(lines) + "\n")
    report = read_databases([tmp_path])
    bad = sorted(p.split(": ")[0].rsplit(":", 1)[1] for p in report.problems)
    assert bad == ["2", "3", "4"]
    assert all(str(db / RECORD_FILE) in p for p in report.problems)
    assert len(report.records) == len(lines) - 3 and report.n_failed >= 1
    assert report.records[-1].latency_s is None
    data, facts = load_cached_training_data([tmp_path])
    assert len(data) == report.n_valid and (data.latencies > 0).all() and facts["n_failed"] == report.n_failed
    assert (db / CACHE_FILE).exists()
    # The cache is keyed by record: changing the database makes it stale, and it is rebuilt.
    with open(db / RECORD_FILE, "a") as f:
        f.write(json.dumps(good) + "\n")
    data2, _ = load_cached_training_data([tmp_path])
    assert len(data2) == len(data) + 1


def test_collect_through_a_local_rpc_tracker(host_target, tmp_path):
    rpc = LocalRPC(tracker_key="cdmpp-test", silent=True)
    try:
        cfg = CollectConfig(random_trials=4, evolutionary_trials=0, trials_per_iter=4, min_repeat_ms=5)
        manifest = collect(load_workload("matmul-small", host_target), host_target, tmp_path, cfg,
                           rpc=RPCSettings(rpc.tracker_host, rpc.tracker_port, rpc.tracker_key), progress=False)
    finally:
        del rpc
    assert manifest["rpc"]["key"] == "cdmpp-test"
    assert manifest["totals"]["valid"] == 4
    assert json.loads((tmp_path / MANIFEST).read_text())["totals"]["records"] == 4


def _fake_task(root, name, workload, tags, device="llvm/test"):
    from pathlib import Path
    d = Path(root) / device.replace("/", "_") / name
    d.mkdir(parents=True)
    (d / RECORD_FILE).write_text("")
    (d / "task.json").write_text(json.dumps({"name": name, "workload": workload, "tags": tags}))
    (d.parent / MANIFEST).write_text(json.dumps({"device": device}))


def test_cross_model_split_has_no_task_leakage(tmp_path):
    from cdmpp_tvm.data.splits import (
        cross_device_split,
        cross_model_split,
        index_tasks,
        read_split,
        write_split,
    )

    _fake_task(tmp_path, "conv_a", "w1", ["resnet18", "resnet50"])  # shared with the held-out network
    _fake_task(tmp_path, "conv_b", "w2", ["resnet50"])
    _fake_task(tmp_path, "dense", "w3", ["bert_base_layer"])
    _fake_task(tmp_path, "conv_a_again", "w1", ["C2D-0"])  # the same workload collected from another suite
    _fake_task(tmp_path, "dense", "w3", ["bert_base_layer"], device="cuda/sm_90a")
    tasks = index_tasks(tmp_path)
    split = cross_model_split(tasks, ["resnet18"])
    names = {d.rsplit("/", 1)[1] for d in split["test"]}
    assert names == {"conv_a", "conv_a_again"}
    by_dir = {str(t.path.relative_to(split["root"])): t.workload for t in tasks}
    assert {by_dir[d] for d in split["train"]}.isdisjoint({by_dir[d] for d in split["test"]})
    write_split(split, tmp_path / "splits" / "s.json")
    train, test = read_split(tmp_path / "splits" / "s.json")
    assert len(train) == 3 and len(test) == 2 and all(p.exists() for p in train + test)
    with pytest.raises(ValueError, match="occur in no task"):
        cross_model_split(tasks, ["vgg16"])
    dev = cross_device_split(tasks, ["cuda/sm_90a"])
    assert [d.split("/")[0] for d in dev["test"]] == ["cuda_sm_90a"]


def test_cross_model_split_over_several_roots_holds_out_every_batch_size_and_extracted_workloads(tmp_path):
    from cdmpp_tvm.data.splits import cross_model_split, index_tasks

    _fake_task(tmp_path / "a", "conv", "w1", ["resnet18"])
    _fake_task(tmp_path / "a", "conv_bs8", "w2", ["resnet18-bs8"])
    _fake_task(tmp_path / "a", "transpose", "w3", ["bert_base_layer"])  # also in resnet18, collected under bert
    _fake_task(tmp_path / "a", "dense", "w4", ["bert_base_layer"])
    bootstrap = tmp_path / "b" / "C2D-0"  # no task.json: known by the workload its workload file defines
    bootstrap.mkdir(parents=True)
    (bootstrap / RECORD_FILE).write_text("")
    (bootstrap / "database_workload.json").write_text(json.dumps([str(0x1F), {}]) + "\n")
    tasks = index_tasks([tmp_path / "a", tmp_path / "b"])
    assert {t.name: t.workload for t in tasks}["C2D-0"] == f"0x{0x1F:016x}"

    def names(split, part):
        return sorted(d.rsplit("/", 1)[-1] for d in split[part])

    split = cross_model_split(tasks, ["resnet18"])
    assert names(split, "test") == ["conv", "conv_bs8"] and "C2D-0" in names(split, "train")
    assert names(cross_model_split(tasks, ["resnet18-bs8"]), "test") == ["conv_bs8"]
    split = cross_model_split(tasks, ["resnet18"], {"w3", f"0x{0x1F:016x}"})
    assert names(split, "test") == ["C2D-0", "conv", "conv_bs8", "transpose"]
    assert split["held_out_workloads"] == sorted({"w3", f"0x{0x1F:016x}"})


def test_protocol_final_test_is_in_no_fold_and_folds_hold_out_whole_families(tmp_path):
    from cdmpp_tvm.data.protocol import load_protocol, protocol_splits
    from cdmpp_tvm.data.splits import index_tasks
    from cdmpp_tvm.errors import UserError

    proto = tmp_path / "p.yaml"
    proto.write_text("name: p\nfinal_test: [swin_tiny]\nfamilies:\n  cnn: [resnet18, vgg11]\n  nlp: [bert_base_layer]\n")
    _fake_task(tmp_path, "ln", "w1", ["swin_tiny-bs4", "bert_base_layer"])  # shared with a final-test network
    _fake_task(tmp_path, "conv", "w2", ["resnet18", "vgg11"])
    _fake_task(tmp_path, "conv_bs8", "w3", ["resnet18-bs8"])
    _fake_task(tmp_path, "dense", "w4", ["bert_base_layer"])
    _fake_task(tmp_path, "op", "w5", ["C2D-0"])
    splits = protocol_splits(index_tasks(tmp_path), load_protocol(proto))
    assert set(splits) == {"final-test", "fold-cnn", "fold-nlp"}

    def names(split, part):
        return sorted(d.rsplit("/", 1)[-1] for d in split[part])

    assert names(splits["final-test"], "test") == ["ln"]
    for fold in ("fold-cnn", "fold-nlp"):  # the final-test task is in neither part of any fold
        assert "ln" not in names(splits[fold], "train") + names(splits[fold], "test")
    assert names(splits["fold-cnn"], "test") == ["conv", "conv_bs8"]
    assert names(splits["fold-cnn"], "train") == ["dense", "op"]
    assert names(splits["fold-nlp"], "test") == ["dense"] and "op" in names(splits["fold-nlp"], "train")
    proto.write_text("name: p\nfinal_test: [vgg11]\nfamilies:\n  cnn: [resnet18, vgg11]\n")
    with pytest.raises(UserError, match="named more than once"):
        load_protocol(proto)


def test_interleave_by_source_round_robins_networks_and_pools_single_task_sources():
    from cdmpp_tvm.data import interleave_by_source
    from cdmpp_tvm.workloads import Task

    def task(name, tag):
        return Task(name=name, mod=None, tags=(tag,), weights={tag: 1.0})

    tasks = [task("a1", "netA"), task("a2", "netA"), task("a3", "netA"), task("b1", "netB"),
             task("op1", "op1"), task("op2", "op2"), task("b2", "netB")]
    order = [t.name for t in interleave_by_source(tasks)]
    assert order == ["a1", "b1", "op1", "a2", "b2", "op2", "a3"]
    assert sorted(order) == sorted(t.name for t in tasks)


def test_collect_stops_a_task_whose_programs_all_fail_or_are_all_the_same(host_target):
    from tvm.s_tir import meta_schedule as ms

    from cdmpp_tvm.data.collect import _CountResults
    from tvm_patches.candidates import sample_candidates

    cands = sample_candidates(load_workload("matmul-small", host_target)[0].mod, host_target, 8, seed=0)
    assert len({str(c.sch.trace) for c in cands}) > 1
    # Call the Python method directly (``_inst``): MetaSchedule's FFI entry point wants a task scheduler.
    ok = (ms.builder.BuilderResult("artifact", None), ms.runner.RunnerResult([1e-3], None))
    bad = (ms.builder.BuilderResult("artifact", None), ms.runner.RunnerResult(None, "RuntimeError: index out of range"))
    counter = _CountResults(None, give_up_after_failed=4)._inst
    counter.apply(None, 0, cands[:2], [bad[0]] * 2, [bad[1]] * 2)  # 2 failures: below the limit
    assert counter.stop_reason is None
    with pytest.raises(RuntimeError, match="unmeasurable"):
        counter.apply(None, 0, cands[:2], [bad[0]] * 2, [bad[1]] * 2)
    assert "index out of range" in counter.stop_reason[1]
    # One valid program means the task is measurable: never give up then.
    counter = _CountResults(None, give_up_after_failed=4)._inst
    counter.apply(None, 0, cands[:5], [ok[0]] + [bad[0]] * 4, [ok[1]] + [bad[1]] * 4)
    assert (counter.valid, counter.run_failed, counter.stop_reason) == (1, 4, None)
    # A first batch of one program repeated: the design space is exhausted.
    counter = _CountResults(None, check_exhausted=True)._inst
    with pytest.raises(RuntimeError, match="design_space_exhausted"):
        counter.apply(None, 0, [cands[0]] * 8, [ok[0]] * 8, [ok[1]] * 8)
    counter = _CountResults(None, check_exhausted=True)._inst
    counter.apply(None, 0, cands, [ok[0]] * len(cands), [ok[1]] * len(cands))
    assert counter.stop_reason is None


def test_warm_started_xgb_predicts_from_the_measured_programs_not_at_random(collected, host_target):
    from tvm.s_tir import meta_schedule as ms

    from cdmpp_tvm.data.collect import warm_started_xgb

    out, tasks, _ = collected
    database = ms.database.JSONDatabase(work_dir=str(out / task_dir_name(tasks[0])))
    ctx = ms.TuneContext(mod=tasks[0].mod, target=host_target, task_name=tasks[0].name, num_threads=1)
    model, n = warm_started_xgb(ctx, database)
    assert n == 8
    cands = [r.as_measure_candidate() for r in database.get_top_k(database.commit_workload(ctx.mod), 8)]
    first, second = model.predict(ctx, cands), model.predict(ctx, cands)
    # A cold XGBModel returns fresh uniform random scores on every call.
    assert np.array_equal(first, second) and np.ptp(first) > 0


def test_collect_skips_measured_and_single_program_tasks(collected, host_target, tmp_path):
    """--skip-measured leaves out tasks another collection already has; --skip-single-program leaves out
    tasks whose design space is one program (a transpose), without measuring either."""
    import tvm
    from tvm import te
    from tvm.s_tir.meta_schedule.utils import shash2hex

    from cdmpp_tvm.data import is_single_program, measured_workloads
    from cdmpp_tvm.workloads import Task

    out, tasks, _ = collected
    known = measured_workloads([out])
    assert known == {shash2hex(t.mod) for t in tasks}
    x = te.placeholder((64, 32), name="x")
    transpose = Task("transpose-64x32", tvm.IRModule({"main": te.create_prim_func([x, te.compute(
        (32, 64), lambda i, j: x[j, i], name="T")])}), tags=("transpose-64x32",))
    assert is_single_program(transpose, host_target) and not is_single_program(tasks[0], host_target)
    manifest = collect([*tasks, transpose], host_target, tmp_path, TINY, progress=False,
                       skip_workloads=known, skip_single_program=True)
    assert manifest["last_run"]["tasks"] == 0 and manifest["tasks"] == {}
    assert {v["reason"] for v in manifest["skipped"].values()} == {"measured_elsewhere", "single_program"}
    assert manifest["skipped"][task_dir_name(transpose)]["single_program"] is True
    assert not any(p.is_dir() for p in tmp_path.iterdir())
    from cdmpp_tvm.data.data_card import data_card_markdown
    assert "Skipped, not measured (last run): 2 task(s) measured_elsewhere, 1 task(s) single_program." \
        in data_card_markdown(manifest)


def test_sigterm_during_a_measurement_exits_143_and_kills_the_worker_processes():
    """collect runs its builder/runner inside reap_workers_on_sigterm: a stopped run must not leave a popen
    worker behind (one kept a core busy after an earlier stopped collect)."""
    script = textwrap.dedent("""
        import os, signal, subprocess, sys, time
        from cdmpp_tvm.data.measure import reap_workers_on_sigterm
        with reap_workers_on_sigterm("test"):
            worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            print(worker.pid, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)
        print("not reached", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-2000:]
    assert "not reached" not in done.stdout
    assert "SIGTERM received" in done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.time() + 10
    while not _gone(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert _gone(pid), f"worker {pid} still running after its collect was stopped"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
