"""Cross-device adaptation: device descriptors, program selection (KMeans), collect --from-selection,
fine-tuning and online adaptation of CDMPPCostModel.

Two "devices" are two llvm targets of this CPU: A = num-cores 2 (source), B = num-cores 1 (target). Except
in ``test_collect_from_selection_measures_exactly_the_selection`` (real measurements), their latencies are
synthetic: fixed, deterministic functions of each program's compact-AST features, different for A and B
but correlated (so that what was learnt on A helps on B)."""
import json
import warnings

import numpy as np
import pytest
import torch
import tvm
import tvm_ffi

from cdmpp_tvm import cli
from cdmpp_tvm.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cdmpp_tvm.model.tree_head import TreeHead
from cdmpp_tvm.data.feature_cache import load_cached_training_data
from cdmpp_tvm.data import RECORD_FILE, read_databases, task_dir_name
from cdmpp_tvm.device import (
    DEVICE_DESCRIPTOR_DIM,
    DEVICE_SCHEMA_VERSION,
    KNOWN_DEVICES,
    detect_local_cpu,
    detect_local_gpu,
    device_descriptor,
    device_for_target,
    device_name,
    device_target,
    read_cpu_facts,
    spec_descriptor,
)
from cdmpp_tvm.features import CompactASTFeaturizer
from cdmpp_tvm.model import ModelConfig
from cdmpp_tvm.adaptation import coverage_distance, kmeans_select, random_select
from cdmpp_tvm.data.selection_files import SELECTION_FILE, read_selection
from cdmpp_tvm.training import TrainConfig, train
from cdmpp_tvm.training.ddp_check import TINY_MODEL, synthetic_training_data
from cdmpp_tvm.workloads import load_workload

TASKS = ("matmul-small", "conv2d-small", "SFM-0", "NRM-0", "GMM-0", "C1D-0")


# ------------------------------------------------------------------------------------------ descriptors

def test_device_table_lookup_by_tag_arch_mcpu_and_override():
    assert {"nvidia-h100-sxm", "nvidia-h200", "nvidia-a100", "nvidia-v100", "nvidia-t4", "epyc-znver1-2core",
            "epyc-znver4-2core", "server-16core"} <= set(KNOWN_DEVICES)
    # Registered TVM tags (the tag itself is not kept by the Target: arch + L2 decide).
    for tag, name in (("nvidia/nvidia-h100", "nvidia-h100-sxm"), ("nvidia/nvidia-a100", "nvidia-a100"),
                      ("nvidia/nvidia-v100", "nvidia-v100"), ("nvidia/nvidia-t4", "nvidia-t4")):
        assert device_for_target(tvm.target.Target(tag)).name == name, tag
    # The H200 has the H100's arch and L2: its target carries its tag, which survives a JSON round trip.
    h200 = tvm.target.Target(json.loads(str(device_target("nvidia-h200"))))
    assert device_for_target(h200).name == "nvidia-h200"
    znver4 = tvm.target.Target({"kind": "llvm", "num-cores": 2, "mcpu": "znver4"})
    assert device_for_target(znver4).name == "epyc-znver4-2core"
    assert device_for_target(tvm.target.Target({"kind": "llvm", "num-cores": 2, "mcpu": "znver1"})).name == \
        "epyc-znver1-2core"
    assert device_for_target(znver4, "server-16core").name == "server-16core"
    with pytest.raises(KeyError, match="unknown device"):
        device_for_target(znver4, "no-such-device")
    unknown = tvm.target.Target({"kind": "llvm", "num-cores": 4, "mcpu": "skylake"})
    assert device_for_target(unknown) is None
    v = device_descriptor(unknown)  # still a descriptor, from the target alone, marked as such
    assert np.all(np.isfinite(v)) and v[0] == 1.0 and v[-2] == 0.0
    assert device_descriptor(znver4)[-2] == 1.0


def test_descriptors_are_distinct_bounded_and_fit_the_model():
    vecs = {name: spec_descriptor(name) for name in KNOWN_DEVICES}
    for name, v in vecs.items():
        assert v.shape == (DEVICE_DESCRIPTOR_DIM,) and v.dtype == np.float32
        assert np.all(np.isfinite(v)) and np.abs(v).max() <= 1.5, (name, v)
    names = list(vecs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(vecs[a] - vecs[b]).max() > 1e-3, (a, b)
    # The two llvm "devices" of these tests: same CPU, 2 cores vs 1.
    a = device_descriptor(tvm.target.Target({"kind": "llvm", "num-cores": 2, "mcpu": "znver4"}))
    b = device_descriptor(tvm.target.Target({"kind": "llvm", "num-cores": 1, "mcpu": "znver4"}))
    assert np.abs(a - b).max() > 0.05
    assert ModelConfig().device_dim == DEVICE_DESCRIPTOR_DIM


def test_read_cpu_facts_from_cpuinfo_and_sysfs(tmp_path):
    cpuinfo = "".join(f"processor\t: {i}\nmodel name\t: Test CPU\ncpu MHz\t\t: 2400.000\nphysical id\t: 0\n"
                      f"core id\t\t: {i // 2}\nflags\t\t: fpu sse2 avx avx2 fma\n\n" for i in range(8))
    cache = tmp_path / "cache"
    for idx, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                               ("2", "Unified", "2048K"), ("3", "Unified", "30M")]):
        d = cache / f"index{idx}"
        d.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (d / name).write_text(value + "\n")
    f = read_cpu_facts(cpuinfo, cache, tmp_path / "no-cpufreq")
    assert f["model"] == "Test CPU" and f["physical_cores"] == 4 and f["logical_cpus"] == 8
    assert f["simd_bits"] == 256 and f["l1d_kb"] == 48 and f["l2_kb"] == 2048 and f["l3_mb"] == 30
    assert f["base_ghz"] == pytest.approx(2.4) and f["boost_ghz"] is None


def test_local_detection_returns_sane_values():
    cpu = detect_local_cpu()
    assert cpu.kind == "cpu" and cpu.physical_cores >= 1 and cpu.simd_bits in (128, 256, 512)
    assert cpu.base_ghz is None or 0.2 < cpu.base_ghz < 7
    import os

    if os.path.exists("/sys/devices/system/cpu/cpu0/cache/index0"):
        assert 8 <= cpu.l1d_kb <= 256 and cpu.l2_kb > cpu.l1d_kb
    assert cpu.target["kind"] == "llvm" and cpu.mcpu == tvm.target.codegen.llvm_get_system_cpu()
    gpu = detect_local_gpu()
    if torch.cuda.is_available():
        assert gpu.kind == "gpu" and gpu.sms > 0 and gpu.memory_gb > 1 and gpu.arch.startswith("sm_")
    else:
        assert gpu is None


def test_checkpoints_record_the_device_schema(tmp_path):
    from cdmpp_tvm.model import CDMPPNet, LabelTransform

    path = tmp_path / "m.pt"
    save_checkpoint(path, CDMPPNet(TINY_MODEL), LabelTransform(), {"name": "x"})
    payload = torch.load(path, weights_only=True)
    assert payload["device_schema"] == DEVICE_SCHEMA_VERSION == "device-v2"
    payload["device_schema"] = "device-v1"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="device-v1"):
        load_checkpoint(path)


def test_devices_cli(capsys):
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in KNOWN_DEVICES) and "Detected on this machine" in out
    assert cli.main(["devices", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["schema"] == "device-v2" and len(info["table"]["nvidia-h200"]["descriptor"]) == DEVICE_DESCRIPTOR_DIM
    assert info["local"]["cpu"]["physical_cores"] >= 1


# ------------------------------------------------------------------------------------------- selection

def _blobs(sizes, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(sizes), dim)) * 100
    X = np.concatenate([c + rng.normal(size=(n, dim)) for c, n in zip(centers, sizes)])
    return X, np.repeat(np.arange(len(sizes)), sizes)


def test_kmeans_picks_one_program_per_well_separated_blob():
    sizes = [3, 6, 12, 25, 50, 100, 300]
    X, blob = _blobs(sizes)
    idx = kmeans_select(X, len(sizes), seed=0)
    assert len(idx) == len(set(idx.tolist())) == len(sizes)
    assert sorted(blob[idx].tolist()) == list(range(len(sizes)))
    # Uniform sampling of the same budget usually misses the small blobs.
    missed = [len(set(blob[random_select(len(X), len(sizes), s)].tolist())) < len(sizes) for s in range(10)]
    assert sum(missed) >= 8


def test_kmeans_covers_the_set_at_least_as_well_as_random():
    X, _ = _blobs([5, 10, 20, 40, 80, 160, 320], dim=8, seed=1)
    X = X + np.random.default_rng(2).normal(size=X.shape) * 5  # blobs with some spread
    for budget in (7, 20, 50):
        km = coverage_distance(X, kmeans_select(X, budget, seed=0))
        rnd = [coverage_distance(X, random_select(len(X), budget, seed=s)) for s in range(10)]
        assert km <= min(rnd), (budget, km, rnd)


def test_kmeans_selection_is_distinct_even_with_duplicate_programs():
    X = np.concatenate([np.zeros((30, 4)), np.eye(4) * 10, np.ones((1, 4)) * 5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn: fewer distinct clusters than n_clusters
        idx = kmeans_select(X, 12, seed=0)
    assert len(idx) == 12 and len(set(idx.tolist())) == 12
    assert set(range(30, 35)) <= set(idx.tolist())  # every distinct point is taken
    with pytest.raises(ValueError, match="larger than"):
        kmeans_select(X, len(X) + 1)
    with pytest.raises(ValueError, match=">= 1"):
        random_select(5, 0)


# --------------------------------------------------------------------- two llvm devices, synthetic latencies

def _mean_features(asts) -> np.ndarray:
    return np.stack([a.leaf_features.mean(0) for a in asts]).astype(np.float64)


class SyntheticDevices:
    """latency_d(program) = scale_d * exp(1.2 tanh(w_d . standardized mean leaf features / 2)): a fixed
    function of the program; w_B = 0.5 w_A + an independent part, scale_B = 2.5 scale_A."""

    def __init__(self, pool_asts):
        F = _mean_features(pool_asts)
        self.mu, sd = F.mean(0), F.std(0)
        ok = sd > 1e-6
        self.sd = np.where(ok, sd, 1.0)
        rng = np.random.default_rng(123)
        wa = rng.normal(size=F.shape[1]) * ok
        wb = 0.5 * wa / np.linalg.norm(wa) + 0.87 * (rng.normal(size=F.shape[1]) * ok) / np.linalg.norm(wa)
        self.w = {"A": wa / np.linalg.norm(wa), "B": wb / np.linalg.norm(wb)}
        self.scale = {"A": 1e-4, "B": 2.5e-4}

    def latency(self, asts, dev: str) -> np.ndarray:
        z = (_mean_features(asts) - self.mu) / self.sd
        return self.scale[dev] * np.exp(1.2 * np.tanh(z @ self.w[dev] / 2))


def _write_database(work, task, cands, target, latencies):
    from tvm.s_tir import meta_schedule as ms

    work.mkdir(parents=True)
    db = ms.database.JSONDatabase(work_dir=str(work))
    wl = db.commit_workload(task.mod)
    for c, lat in zip(cands, latencies):
        db.commit_tuning_record(ms.database.TuningRecord(trace=c.sch.trace, workload=wl, run_secs=[float(lat)],
                                                         target=target, args_info=c.args_info))
    (work / "task.json").write_text(json.dumps({"name": task.name, "workload": "", "tags": list(task.tags)}))


@pytest.fixture(scope="module")
def world(tmp_path_factory, host_target):
    """Source (A) and target (B) databases of 6 tasks x 48 programs with synthetic latencies, and a base
    checkpoint trained on A."""
    from tvm_patches.candidates import sample_candidates

    root = tmp_path_factory.mktemp("xdev")
    mcpu = str(host_target.attrs["mcpu"])
    targets = {"A": tvm.target.Target({"kind": "llvm", "num-cores": 2, "mcpu": mcpu}),
               "B": tvm.target.Target({"kind": "llvm", "num-cores": 1, "mcpu": mcpu})}
    fz = CompactASTFeaturizer()
    sampled = {}
    for i, name in enumerate(TASKS):
        task = load_workload(name, host_target)[0]
        for dev, seed in (("A", i), ("B", 100 + i)):
            cands = sample_candidates(task.mod, targets[dev], 48, seed=seed, num_threads=1)
            sampled[name, dev] = (task, cands, fz.featurize([c.sch.mod for c in cands], False))
    synth = SyntheticDevices([a for _, _, asts in sampled.values() for a in asts])
    for (name, dev), (task, cands, asts) in sampled.items():
        _write_database(root / dev / name, task, cands, targets[dev], synth.latency(asts, dev))
    data, facts = load_cached_training_data([root / "A"])
    cfg = TrainConfig(epochs=25, batch_size=32, lr=2e-3, warmup_steps=5, patience=100, device="cpu", progress=False,
                      val_fraction=0.2)
    torch.manual_seed(0)
    model, lt, hist = train(data, TINY_MODEL, cfg)
    base = root / "base.pt"
    save_checkpoint(base, model, lt, {"name": "llvm/" + mcpu + " (2 cores)", "targets": facts["targets"],
                                      "descriptor": data.device[0].tolist()}, {"train_config": cfg.to_dict()},
                    TreeHead.fit(data, 0.2, n_threads=1))
    return {"root": root, "targets": targets, "synth": synth, "base": base, "fz": fz, "base_history": hist}


def test_finetune_cli_beats_base_on_held_out_target_tasks(world, tmp_path, capsys):
    out = tmp_path / "finetuned.pt"
    rc = cli.main(["finetune", "--checkpoint", str(world["base"]), "--database", str(world["root"] / "B"),
                   "--source-database", str(world["root"] / "A"), "--out", str(out), "--epochs", "25",
                   "--val-fraction", "0.34", "--lr", "1e-3", "--no-progress"])
    assert rc == 0, capsys.readouterr()
    ck = load_checkpoint(out)
    ft = ck.info["finetune"]
    assert len(ft["val_tasks"]) == 2 and len(ft["train_tasks"]) == 4 and not set(ft["val_tasks"]) & set(ft["train_tasks"])
    assert ft["val"]["loss"] < ft["base_val"]["loss"], ft
    assert ft["val"]["mape"] < ft["base_val"]["mape"], ft
    assert ck.info["train_config"]["cmd_weight"] == 1.0 and max(ck.info["history"]["cmd"]) > 0
    # The device entry is the target device's; BASE's label transform is kept.
    b = device_descriptor(world["targets"]["B"])
    np.testing.assert_allclose(ck.device["descriptor"], b, atol=1e-6)
    assert ck.device["finetuned_from"] == load_checkpoint(world["base"]).device["name"]
    assert ck.label_transform.to_dict() == load_checkpoint(world["base"]).label_transform.to_dict()
    torch.testing.assert_close(ck.model.feature_mean, load_checkpoint(world["base"]).model.feature_mean)
    # BASE's tree head is kept, its latency scale moved to the target device's records.
    target, _ = load_cached_training_data([world["root"] / "B"])
    trees = ck.tree_head.predict_latency_s(target.asts)
    assert ck.tree_head.weight == 0.2 and abs(np.median(np.log(target.latencies / trees))) < 1e-6
    base_trees = load_checkpoint(world["base"]).tree_head.predict_latency_s(target.asts)
    np.testing.assert_allclose(trees / base_trees, (trees / base_trees)[0], rtol=1e-6)
    from cdmpp_tvm import CDMPPCostModel

    cm = CDMPPCostModel(checkpoint=str(out))
    assert cm.stats()["checkpoint"] == str(out)
    printed = capsys.readouterr().out
    assert "held-out task" in printed and "BASE -> fine-tuned" in printed


def test_train_rejects_both_cmd_domains():
    data = synthetic_training_data(32, 4)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", progress=False, cmd_weight=1.0)
    with pytest.raises(ValueError, match="not both"):
        train(data, TINY_MODEL, cfg, target_domain=data, source_domain=data)


def test_online_adaptation_lowers_error_on_a_new_device(world, host_target):
    """A checkpoint trained on device A tunes on device B (never seen): MAPE on held-out candidates of
    the tuned task falls as measured batches of B arrive through update()."""
    from tvm.s_tir import meta_schedule as ms

    from cdmpp_tvm import CDMPPCostModel, OnlineConfig
    from tvm_patches.candidates import sample_candidates

    target_b = world["targets"]["B"]
    task = load_workload("conv2d-small", host_target)[0]
    cands = sample_candidates(task.mod, target_b, 160, seed=7, num_threads=1)
    truth = world["synth"].latency(world["fz"].featurize([c.sch.mod for c in cands], False), "B")
    held, held_truth = cands[128:], truth[128:]
    ctx = ms.TuneContext(mod=task.mod, target=target_b, task_name=task.name)
    torch.manual_seed(0)
    cm = CDMPPCostModel(checkpoint=str(world["base"]), online=OnlineConfig(time_budget_s=60.0, max_steps_per_update=16))

    def mape() -> float:
        return float(np.mean(np.abs(cm.predict_latency(ctx, held) - held_truth) / held_truth))

    errors = [mape()]
    for b in range(4):
        sl = slice(32 * b, 32 * (b + 1))
        cm.update(ctx, cands[sl], [ms.runner.RunnerResult(run_secs=[float(x)], error_msg=None) for x in truth[sl]])
        errors.append(mape())
    s = cm.stats()
    assert s["new_device"] and s["update_fallbacks"] == 0 and s["online_steps"] > 0
    assert errors[-1] < 0.6 * errors[0], errors
    assert max(errors[1:]) < errors[0], errors


# --------------------------------------------------------------------------------------------- select CLI

def test_select_writes_a_selection_the_reader_sees_as_unmeasured(world, tmp_path, capsys):
    out = tmp_path / "sel"
    rc = cli.main(["select", "--checkpoint", str(world["base"]), "--workloads", "ci-tiny", "--device", "host",
                   "--budget", "10", "--per-task-candidates", "32", "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    sel = read_selection(out)
    assert sel["method"] == "kmeans" and sel["budget"] == 10 and sel["n_selected"] == 10
    entry = device_for_target(tvm.target.Target(sel["target"]))
    assert sel["checkpoint"] == str(world["base"])
    assert sel["device"]["name"] == (entry.name if entry else device_name(tvm.target.Target(sel["target"])))
    assert sum(t["selected"] for t in sel["tasks"].values()) == 10 and len(sel["tasks"]) == 2
    report = read_databases([out])
    assert report.records == [] and report.n_failed == 0 and report.n_unmeasured == 10
    report = read_databases([out], include_unmeasured=True)
    assert len(report.records) == 10 and not any(r.measured for r in report.records)
    keys = {tvm_ffi.structural_hash(r.scheduled_mod()) for r in report.records}  # replayable, distinct programs
    assert len(keys) == 10
    data, facts = load_cached_training_data([out])  # nothing to train on, and nothing counted as failed
    assert len(data) == 0 and facts["n_failed"] == 0
    # random selection; errors: non-empty output directory, budget above the candidates
    assert cli.main(["select", "--checkpoint", str(world["base"]), "--workloads", "matmul-small", "--device",
                     "epyc-znver4-2core", "--budget", "4", "--per-task-candidates", "16", "--method", "random",
                     "--out", str(tmp_path / "rnd")]) == 0
    assert read_selection(tmp_path / "rnd")["method"] == "random"
    capsys.readouterr()
    assert cli.main(["select", "--checkpoint", str(world["base"]), "--workloads", "matmul-small", "--device", "host",
                     "--budget", "4", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["select", "--checkpoint", str(world["base"]), "--workloads", "matmul-small", "--device", "host",
                     "--budget", "999", "--per-task-candidates", "8", "--out", str(tmp_path / "big")]) == 2
    assert "larger than" in capsys.readouterr().err


def test_collect_from_selection_rejects_bad_selections(world, tmp_path, capsys):
    out = str(tmp_path / "measured")
    assert cli.main(["collect", "--from-selection", str(tmp_path / "missing"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["collect", "--from-selection", str(empty), "--out", out]) == 2
    assert "not a selection" in capsys.readouterr().err
    (empty / SELECTION_FILE).write_text("{not json")
    assert cli.main(["collect", "--from-selection", str(empty), "--out", out]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (empty / SELECTION_FILE).write_text(json.dumps({"format": "something-else"}))
    assert cli.main(["collect", "--from-selection", str(empty), "--out", out]) == 2
    assert "not a cdmpp-tvm selection" in capsys.readouterr().err
    sel = tmp_path / "sel"
    assert cli.main(["select", "--checkpoint", str(world["base"]), "--workloads", "ci-tiny", "--device", "host",
                     "--budget", "4", "--per-task-candidates", "16", "--out", str(sel)]) == 0
    victim = next(d for d, t in read_selection(sel)["tasks"].items() if t["selected"])
    (sel / victim / RECORD_FILE).unlink()
    capsys.readouterr()
    assert cli.main(["collect", "--from-selection", str(sel), "--out", out]) == 2
    assert "incomplete" in capsys.readouterr().err
    assert not (tmp_path / "measured").exists()  # nothing was built or written


def test_collect_from_selection_measures_exactly_the_selection(world, tmp_path, host_target):
    """Real measurements (builder + runner) of a 6-program selection; resumable."""
    from cdmpp_tvm.workloads import load_suite

    sel = tmp_path / "sel"
    assert cli.main(["select", "--checkpoint", str(world["base"]), "--workloads", "ci-tiny", "--device", "host",
                     "--budget", "6", "--per-task-candidates", "16", "--out", str(sel)]) == 0
    selected = read_databases([sel], include_unmeasured=True).records
    out = tmp_path / "measured"
    args = ["collect", "--from-selection", str(sel), "--out", str(out), "--min-repeat-ms", "5"]
    assert cli.main(args) == 0
    report = read_databases([out])
    assert len(report.records) == 6 and report.n_unmeasured == 0 and report.n_valid > 0
    assert {str(r.record.trace) for r in report.records} == {str(r.record.trace) for r in selected}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selection"]["method"] == "kmeans" and manifest["totals"]["records"] == 6
    t = manifest["totals"]
    assert t["valid"] + t["build_failed"] + t["run_failed"] == 6
    for task in load_suite("ci-tiny", host_target):
        d = out / task_dir_name(task)
        if d.exists():
            state = json.loads((d / "task.json").read_text())
            assert state["status"] == "done" and state["phases"]["selection"]["done"]
    # Resume: nothing left to measure.
    assert cli.main(args) == 0
    again = json.loads((out / "manifest.json").read_text())
    assert again["last_run"]["valid_records"] == 0 and again["totals"]["records"] == 6
    # A killed run lost its last record: only that program is measured again.
    db = next(d for d in out.iterdir() if (d / RECORD_FILE).exists())
    lines = (db / RECORD_FILE).read_text().splitlines()
    (db / RECORD_FILE).write_text("\n".join(lines[:-1]) + "\n")
    assert cli.main(args) == 0
    assert len(read_databases([out]).records) == 6
    # The measured selection is a dataset: it featurizes and trains.
    data, _ = load_cached_training_data([out])
    assert len(data) == report.n_valid


def test_feature_cache_is_stale_under_another_device_schema(world, tmp_path):
    import shutil

    from cdmpp_tvm.data.feature_cache import CACHE_FILE, featurize_database

    db = tmp_path / "db"
    shutil.copytree(world["root"] / "B" / "matmul-small", db)
    cache = featurize_database(db, progress=False)
    with np.load(cache) as z:
        arrays = {k: z[k] for k in z.files}
    assert str(arrays["device_schema"]) == DEVICE_SCHEMA_VERSION
    arrays["device_schema"] = np.asarray("device-v1")
    arrays["device"] = arrays["device"][:, :16]  # what a device-v1 cache held
    np.savez_compressed(db / CACHE_FILE, **arrays)
    data, _ = load_cached_training_data([db])
    assert data.device.shape == (48, DEVICE_DESCRIPTOR_DIM)  # re-featurized with the current descriptors


def test_plan_remeasure_measures_the_source_programs_again(collected, tmp_path, capsys):
    """plan-remeasure picks measured programs of another device's dataset; collect --from-selection
    measures exactly those programs (same task directories and traces), so devices pair up program by
    program. Final-test tasks of a split are left out; impossible requests exit 2 with one line."""
    from cdmpp_tvm.data.layout import database_lines, trace_key

    src, _, _ = collected
    src_dirs = sorted(d for d in src.iterdir() if (d / RECORD_FILE).exists())
    sel = tmp_path / "sel"
    assert cli.main(["plan-remeasure", "--database", str(src), "--out", str(sel), "--per-task", "3",
                     "--max-tasks", "5", "--seed", "1"]) == 0
    selection = read_selection(sel)
    assert selection["method"] == "remeasure-random" and selection["n_selected"] == 3 * len(src_dirs)
    report = read_databases([sel], include_unmeasured=True)
    assert report.n_unmeasured == 3 * len(src_dirs) and report.n_valid == 0
    out = tmp_path / "measured"
    assert cli.main(["collect", "--from-selection", str(sel), "--out", str(out), "--min-repeat-ms", "5"]) == 0
    for d in src_dirs:
        source_keys = {trace_key(rec) for _, rec in database_lines(d / RECORD_FILE) if rec[1] is not None}
        measured = [rec for _, rec in database_lines(out / d.name / RECORD_FILE)]
        assert len(measured) == 3 and {trace_key(r) for r in measured} <= source_keys
        assert all(r[1] is not None for r in measured)
    # A split's test tasks are excluded.
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"kind": "final-test", "root": str(src), "train": [d.name for d in src_dirs[1:]],
                                 "test": [src_dirs[0].name]}))
    sel2 = tmp_path / "sel2"
    assert cli.main(["plan-remeasure", "--database", str(src), "--out", str(sel2), "--per-task", "2",
                     "--exclude-split", str(split)]) == 0
    assert src_dirs[0].name not in read_selection(sel2)["tasks"]
    capsys.readouterr()
    assert cli.main(["plan-remeasure", "--database", str(src), "--out", str(tmp_path / "sel3"),
                     "--per-task", "1000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1000 valid distinct programs" in err[0]
    assert cli.main(["plan-remeasure", "--database", str(src), "--out", str(sel), "--per-task", "2"]) == 2
