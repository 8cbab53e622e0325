"""Real MetaSchedule tuning with CDMPPCostModel: tiny budgets, real builds and measurements."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cdmpp_tvm import CDMPPCostModel
from cdmpp_tvm.model.checkpoint import list_pretrained
from cdmpp_tvm.tuning import tune
from cdmpp_tvm.workloads import load_workload

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("scheduler", ["round-robin", "gradient"])
def test_tune_matmul_and_conv2d(host_target, tmp_path, scheduler):
    tasks = load_workload("matmul-small", host_target) + load_workload("conv2d-small", host_target)
    cm = CDMPPCostModel()  # the bundled checkpoint for this target
    result = tune(tasks, host_target, trials=32, work_dir=str(tmp_path), cost_model=cm, trials_per_iter=8,
                  task_scheduler=scheduler, progress=False, population_size=64)
    assert [t.name for t in result.tasks] == ["matmul-small", "conv2d-small"]
    assert all(t.best_latency_s is not None and t.best_latency_s > 0 for t in result.tasks)
    assert sum(t.trials for t in result.tasks) == 32
    s = cm.stats()
    assert s["fallbacks"] == 0
    assert s["checkpoint"] is not None and Path(s["checkpoint"]).name.endswith(".pt")
    assert s["candidates_scored"] > 0 and s["update_calls"] >= 4 and s["online_steps"] > 0
    assert s["records_seen"] == 32
    assert 0.0 <= s["cache_hit_rate"] <= 1.0


def test_predict_exception_is_a_counted_fallback_and_tuning_finishes(host_target, tmp_path, caplog):
    cm = CDMPPCostModel(checkpoint="scratch")
    calls = {"n": 0}
    real = cm.featurizer.featurize

    def flaky(mods, is_gpu):
        calls["n"] += 1
        if calls["n"] % 2 == 1:
            raise RuntimeError("injected featurizer failure")
        return real(mods, is_gpu)

    cm.featurizer.featurize = flaky
    result = tune(load_workload("matmul-small", host_target), host_target, trials=8, work_dir=str(tmp_path),
                  cost_model=cm, trials_per_iter=8, task_scheduler="round-robin", progress=False,
                  population_size=64)
    assert result.tasks[0].best_latency_s is not None
    s = cm.stats()
    assert s["predict_fallbacks"] >= 1 and s["fallbacks"] == s["predict_fallbacks"] + s["update_fallbacks"]
    assert "injected featurizer failure" in caplog.text and "matmul-small" in caplog.text


def test_oom_splits_the_batch_and_goes_on(monkeypatch):
    """The CUDA OOM path, exercised on the CPU by making large batches raise OutOfMemoryError."""
    from cdmpp_tvm.features import FEATURE_DIM, CompactAST
    from cdmpp_tvm.model import CDMPPNet, ModelConfig
    from cdmpp_tvm.model.inference import OOMSplitCounter, predict_transformed

    model = CDMPPNet(ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=16, embed_dim=16, regressor_hidden=[16]))
    asts = [CompactAST(np.full((2, FEATURE_DIM), i, np.float32), np.array([1, 2], np.int32), np.zeros(1, np.int32),
                       np.zeros(1, np.int32), np.ones(1, np.int32)) for i in range(10)]
    expected = predict_transformed(model, asts, None, 64, torch.device("cpu"))
    real_forward = model.forward

    def small_memory(features, *args, **kwargs):
        if features.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("injected")
        return real_forward(features, *args, **kwargs)

    monkeypatch.setattr(model, "forward", small_memory)
    oom = OOMSplitCounter()
    got = predict_transformed(model, asts, None, 64, torch.device("cpu"), oom=oom)
    assert oom.splits >= 3 and np.allclose(got, expected, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_inference_matches_cpu(host_target):
    from test_compact_ast import matmul_16

    from cdmpp_tvm.model.checkpoint import load_checkpoint
    from cdmpp_tvm.features import CompactASTFeaturizer
    from cdmpp_tvm.model.inference import predict_transformed
    from tvm_patches.candidates import sample_candidates

    cands = sample_candidates(matmul_16, host_target, 64, seed=1)
    asts = CompactASTFeaturizer().featurize([c.sch.mod for c in cands], is_gpu=False)
    ck = load_checkpoint(list_pretrained()[0])
    cpu = predict_transformed(ck.model, asts, None, 16, torch.device("cpu"))
    gpu = predict_transformed(ck.model.to("cuda"), asts, None, 16, torch.device("cuda"))
    assert np.allclose(cpu, gpu, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tune_on_the_gpu_with_the_model_on_the_gpu(tmp_path):
    """A real CUDA tuning run: programs built for this GPU's arch and measured on it, the model on the GPU
    (no bundled CUDA checkpoint yet: it starts untrained and learns online, logged)."""
    import tvm

    major, minor = torch.cuda.get_device_capability(0)
    target = tvm.target.Target({"kind": "cuda", "arch": f"sm_{major}{minor}", "max_threads_per_block": 1024,
                                "max_num_threads": 1024, "max_shared_memory_per_block": 49152,
                                "thread_warp_size": 32, "registers_per_block": 65536})
    cm = CDMPPCostModel(device="cuda")
    result = tune(load_workload("matmul-small", target), target, trials=16, work_dir=str(tmp_path), cost_model=cm,
                  trials_per_iter=8, task_scheduler="round-robin", progress=False, population_size=64)
    assert result.tasks[0].best_latency_s is not None and result.tasks[0].best_latency_s > 0
    s = cm.stats()
    assert s["torch_device"] == "cuda" and s["fallbacks"] == 0
    assert s["records_seen"] == 16 and s["candidates_scored"] > 0


def test_cli_tune_main_job(tmp_path):
    work = tmp_path / "work"
    out = subprocess.run([sys.executable, "-m", "cdmpp_tvm.cli", "tune", "--workload", "matmul-small", "--trials", "8",
                          "--trials-per-iter", "8", "--population-size", "64", "--work-dir", str(work)], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Best latency:" in out.stdout and "MetaSchedule database:" in out.stdout
    lines = (work / "database_tuning_record.json").read_text().splitlines()
    assert len(lines) == 8
    assert "using bundled checkpoint" in out.stderr


def test_guard_keeps_the_pretrained_model_after_noisy_updates(host_target):
    """Measurements that contradict a good pretrained model for a while must not take over predictions."""
    from scipy.stats import spearmanr
    from tvm.s_tir import meta_schedule as ms

    from cdmpp_tvm import OnlineConfig
    from tvm_patches.candidates import sample_candidates

    task = load_workload("conv2d-small", host_target)[0]
    cands = sample_candidates(task.mod, host_target, 96, seed=3)
    ctx = ms.TuneContext(mod=task.mod, target=host_target, task_name=task.name)
    cm = CDMPPCostModel(online=OnlineConfig(time_budget_s=10.0, max_steps_per_update=8))
    # The "true" latencies are the pretrained model's own view, so it is the right model here.
    truth = 1e-3 / cm.predict(ctx, cands)

    def measured(lat):
        return [ms.runner.RunnerResult(run_secs=[float(x)], error_msg=None) for x in lat]

    for b in range(2):  # noisy measurements: the order of the truth, reversed
        sl = slice(16 * b, 16 * (b + 1))
        cm.update(ctx, cands[sl], measured(truth[sl].max() + truth[sl].min() - truth[sl]))
    for b in range(2, 5):  # then honest ones
        sl = slice(16 * b, 16 * (b + 1))
        cm.update(ctx, cands[sl], measured(truth[sl]))
    s = cm.stats()
    assert s["online_steps"] > 0 and s["update_fallbacks"] == 0
    assert s["guard_uses_anchor"]
    held_out = cands[80:]
    rho = spearmanr(cm.predict(ctx, held_out), 1.0 / truth[80:]).statistic
    assert rho > 0.99


def test_fresh_batch_errors_score_each_batch_before_learning_from_it(host_target):
    """stats()["fresh_batch_errors"]: per update, the error of predict_latency on the batch before training on
    it, and of the checkpoint as loaded; a device twice as slow as the checkpoint believes is learnt."""
    from tvm.s_tir import meta_schedule as ms

    from cdmpp_tvm import OnlineConfig
    from tvm_patches.candidates import sample_candidates

    task = load_workload("conv2d-small", host_target)[0]
    cands = sample_candidates(task.mod, host_target, 32, seed=5)
    ctx = ms.TuneContext(mod=task.mod, target=host_target, task_name=task.name)
    # No training steps: what changes between the two batches is the latency calibration alone, which makes
    # the second batch's error exactly predictable.
    cm = CDMPPCostModel(online=OnlineConfig(max_steps_per_update=0))
    believed = [cm.predict_latency(ctx, cands[:16]), cm.predict_latency(ctx, cands[16:])]
    for b, lat in enumerate(believed):
        results = [ms.runner.RunnerResult(run_secs=[float(2 * x)], error_msg=None) for x in lat]
        results[0] = ms.runner.RunnerResult(run_secs=None, error_msg="failed")  # failures are not scored
        cm.update(ctx, cands[16 * b:16 * (b + 1)], results)
    first, second = cm.stats()["fresh_batch_errors"]
    assert (first["records_before"], first["n"], second["records_before"], second["n"]) == (0, 15, 16, 15)
    # Measured = 2 x predicted: the relative error of the unadapted prediction is exactly 1/2.
    assert first["mape"] == pytest.approx(0.5, rel=1e-4) and first["pretrained_mape"] == pytest.approx(0.5, rel=1e-4)
    assert first["pairwise_accuracy"] == pytest.approx(1.0)
    assert second["pretrained_mape"] == pytest.approx(0.5, rel=1e-4)  # the checkpoint as loaded never changes
    # After one batch the cost model knows this device is 2x slower than the checkpoint believes.
    assert second["mape"] == pytest.approx(0.0, abs=1e-4)
