"""Training: losses, the CMD regularizer, resumable training states, data-parallel training, configs,
the train / tune-hparams commands and the hyperparameter search (tiny synthetic programs, no TVM
database)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from cdmpp_tvm import cli
from cdmpp_tvm.model.checkpoint import load_checkpoint
from cdmpp_tvm.data.dataset import split_by_group
from cdmpp_tvm.model import LabelTransform, central_moment_discrepancy, mape_loss, ranking_pair_losses, regression_loss
from cdmpp_tvm.model.inference import predict_transformed
from cdmpp_tvm.training import (
    ConfigError,
    TrainConfig,
    epoch_generator,
    evaluate,
    load_train_config,
    load_train_job,
    load_training_state,
    train,
    write_train_config,
)
from cdmpp_tvm.training.ddp_check import TINY_MODEL, synthetic_training_data
from cdmpp_tvm.training.hparam_search import SPACE, best_job, search_hparams, space_for

CPU = torch.device("cpu")


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=16, lr=2e-3, warmup_steps=2, device="cpu", patience=100, progress=False)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------------------------------------- losses

def test_central_moment_discrepancy():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    assert central_moment_discrepancy(x, x.clone()).item() == 0.0
    shifted = central_moment_discrepancy(x, x + 0.5).item()
    assert shifted == pytest.approx(0.5 * math.sqrt(8), rel=1e-5)  # only the means differ
    y = torch.randn(200, 8, generator=torch.Generator().manual_seed(1)) * 2.0 + 0.3
    assert central_moment_discrepancy(x, y).item() > 0
    assert central_moment_discrepancy(x, y).item() == pytest.approx(central_moment_discrepancy(y, x).item(), rel=1e-6)
    # Higher moments count: x = {0, 2}, y = {1, 1}: same mean, central moments (1, 0, 1, 0) vs 0 -> 2.
    a, b = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [1.0]])
    assert central_moment_discrepancy(a, b, k=5).item() == pytest.approx(2.0)
    assert central_moment_discrepancy(a, b, k=2).item() == pytest.approx(1.0)
    # The gradient at zero discrepancy is finite (training with the regularizer must not produce NaN).
    z = x.clone().requires_grad_()
    central_moment_discrepancy(z, x).backward()
    assert torch.isfinite(z.grad).all()


def _fitted_spread(y: torch.Tensor, rank_temperature: float) -> float:
    """Free predictions of one task fitted to MSE + ranking loss -> std(pred) / std(y)."""
    pred = torch.zeros_like(y, requires_grad=True)
    opt = torch.optim.Adam([pred], lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        regression_loss(pred, y, torch.zeros(len(y), dtype=torch.long), 1.0, rank_temperature).backward()
        opt.step()
    return float(pred.detach().std() / y.std())


def test_graded_ranking_loss_is_calibrated_where_the_hard_one_stretches():
    y = torch.tensor([-0.9, -0.3, -0.25, 0.1, 0.5, 1.2])
    # Graded targets: zero loss at pred = y, positive elsewhere, gradient towards the true gaps.
    assert ranking_pair_losses(y.clone(), y, temperature=0.1).abs().max().item() < 1e-5
    pred = (y * 2.0).requires_grad_()
    losses = ranking_pair_losses(pred, y, temperature=0.1)
    assert losses.numel() == 30 and (losses >= 0).all() and losses.sum() > 0
    losses.sum().backward()
    assert (pred - 0.01 * pred.grad).std() < pred.std()  # a stretched prediction is pulled back in
    with pytest.raises(ValueError, match="temperature"):
        ranking_pair_losses(y, y, temperature=-1.0)
    # Next to MSE the hard loss keeps the fitted predictions of a task spread wider than the truth; the
    # graded one fits the truth.
    assert _fitted_spread(y, 0.0) > 1.1
    assert _fitted_spread(y, 0.1) == pytest.approx(1.0, abs=0.01)


def test_rank_temperature_is_validated():
    with pytest.raises(ValueError, match="rank_temperature"):
        TrainConfig(rank_temperature=-0.1)


@pytest.mark.parametrize("method", ["log", "box-cox"])
def test_mape_loss_is_on_latency_in_seconds(method):
    lat = np.exp(np.random.default_rng(0).uniform(np.log(1e-5), np.log(1e-1), 64))
    lt = LabelTransform.fit(lat, method)
    pred = torch.tensor(lt.transform(lat * 1.1), requires_grad=True)  # every prediction 10% too slow
    loss = mape_loss(pred, torch.tensor(lat), lt)
    assert loss.item() == pytest.approx(0.1, rel=1e-4)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # A wild prediction gives a large but finite loss.
    assert math.isfinite(mape_loss(torch.full((3,), 1e6), torch.tensor(lat[:3]), lt).item())


def test_mse_mape_training_with_box_cox():
    data = synthetic_training_data(96, 6)
    model, lt, hist = train(data, TINY_MODEL, _cfg(loss="mse+mape", label_transform="box-cox"))
    assert lt.method == "box-cox" and hist["train_loss"][-1] < hist["train_loss"][0]
    assert all(math.isfinite(v) for v in hist["val_loss"] + hist["val_mape"])
    # The validation MAPE is the MAPE of de-transformed predictions of the validation tasks.
    _, va = split_by_group(data.groups, 0.15, 0)
    val = data.subset(va)
    pred_s = lt.inverse(predict_transformed(model, val.asts, None, 64, CPU))
    mape = np.mean(np.abs(pred_s - val.latencies) / val.latencies)
    assert hist["val_mape"][hist["best_epoch"]] == pytest.approx(mape, rel=1e-5)
    assert evaluate(model, val, lt, _cfg(loss="mse+mape"), CPU)["mape"] == pytest.approx(mape, rel=1e-5)


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="mape")
    with pytest.raises(ValueError, match="label_transform"):
        TrainConfig(label_transform="sqrt")
    with pytest.raises(ValueError, match="cmd_weight"):
        TrainConfig(cmd_weight=-1)
    with pytest.raises(ValueError, match="min_epochs"):
        TrainConfig(min_epochs=0)
    with pytest.raises(ValueError, match="tree_head_weight"):
        TrainConfig(tree_head_weight=1.5)


def test_min_epochs_keeps_no_epoch_before_it():
    data = synthetic_training_data(96, 6)
    _, _, hist = train(data, TINY_MODEL, _cfg(epochs=6, min_epochs=3, patience=1))
    val = hist["val_loss"]
    # The kept epoch is the best one from epoch 2 on, even where an earlier epoch had a lower loss, and
    # patience counts from there: with patience 1, training stops at the first epoch after it that is
    # not better.
    assert hist["best_epoch"] >= 2 and val[hist["best_epoch"]] == min(val[2:])
    if hist["stopped"] == "early":
        assert len(val) - 1 == hist["best_epoch"] + 1
    # min_epochs = epochs: the last epoch is kept whatever its loss.
    _, _, hist = train(data, TINY_MODEL, _cfg(epochs=3, min_epochs=3))
    assert hist["best_epoch"] == 2


# ------------------------------------------------------------------------------------------------- CMD

def test_cmd_regularizer_aligns_target_embeddings():
    src = synthetic_training_data(96, 6, seed=0)
    tgt = synthetic_training_data(64, 4, seed=1, shift=1.0)  # another domain: shifted features
    with pytest.raises(ValueError, match="target"):
        train(src, TINY_MODEL, _cfg(cmd_weight=1.0))
    gaps = {}
    for w in (0.0, 1.0):
        model, _, hist = train(src, TINY_MODEL, _cfg(epochs=6, cmd_weight=w, cmd_batch_size=32),
                               target_domain=tgt if w else None)
        _, zs = predict_transformed(model, src.asts, None, 64, CPU, want_embedding=True)
        _, zt = predict_transformed(model, tgt.asts, None, 64, CPU, want_embedding=True)
        gaps[w] = central_moment_discrepancy(torch.tensor(zs), torch.tensor(zt)).item()
        assert (hist["cmd"][-1] > 0) == (w > 0)
    assert gaps[1.0] < 0.3 * gaps[0.0], gaps


# -------------------------------------------------------------------------------------- resume after kill

class Killed(Exception):
    pass


def _kill_after(epoch_to_die: int):
    def on_epoch(epoch, model, history):
        if epoch == epoch_to_die:
            raise Killed()
    return on_epoch


@pytest.mark.parametrize("how", ["exception", "time_limit"])
def test_resume_after_kill_matches_a_straight_run(tmp_path, how):
    data = synthetic_training_data(96, 6)
    tgt = synthetic_training_data(32, 2, seed=3, shift=0.5)
    cfg = _cfg(epochs=5, cmd_weight=0.2, cmd_batch_size=8)  # dropout 0.1 + target sampling: RNG must resume too
    straight, _, h_straight = train(data, TINY_MODEL, cfg, target_domain=tgt, state_path=tmp_path / "straight.pt")

    state = tmp_path / "killed.pt"
    if how == "exception":
        with pytest.raises(Killed):
            train(data, TINY_MODEL, cfg, target_domain=tgt, state_path=state, on_epoch=_kill_after(1))
    else:
        _, _, h = train(data, TINY_MODEL, TrainConfig(**{**cfg.to_dict(), "time_limit_s": 0.0}), target_domain=tgt,
                        state_path=state)
        assert h["stopped"] == "time_limit" and len(h["train_loss"]) == 1
    saved = torch.load(state, weights_only=True)  # tensors and plain values only
    assert saved["epoch"] == (1 if how == "exception" else 0)
    assert {"model", "optimizer", "best_state", "best_loss", "bad_epochs", "history", "label_transform",
            "torch_rng", "step"} <= set(saved)

    resumed, _, h_resumed = train(data, TINY_MODEL, cfg, target_domain=tgt, state_path=state)
    assert len(h_resumed["train_loss"]) == 5 and h_resumed["stopped"] == "epochs"
    assert np.allclose(h_resumed["train_loss"], h_straight["train_loss"], rtol=1e-5)
    assert h_resumed["best_epoch"] == h_straight["best_epoch"]
    for k, v in straight.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k

    # A finished run resumes to itself without training; a state of other data is refused.
    again, _, h_again = train(data, TINY_MODEL, cfg, target_domain=tgt, state_path=state)
    assert h_again["train_loss"] == h_resumed["train_loss"]
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in resumed.state_dict().items())
    with pytest.raises(ValueError, match="programs"):
        train(synthetic_training_data(80, 6), TINY_MODEL, cfg, target_domain=tgt, state_path=state)


def test_epoch_order_depends_only_on_seed_and_epoch():
    torch.manual_seed(1)
    a = torch.randperm(50, generator=epoch_generator(0, 3))
    torch.manual_seed(2)  # the global RNG (dropout) does not shift the order: ranks and resumed runs agree
    assert torch.equal(a, torch.randperm(50, generator=epoch_generator(0, 3)))
    assert not torch.equal(a, torch.randperm(50, generator=epoch_generator(0, 4)))
    assert not torch.equal(a, torch.randperm(50, generator=epoch_generator(1, 3)))


def test_length_bucketed_batches_hold_programs_of_similar_length_and_every_program_once():
    from cdmpp_tvm.training.loop import length_bucketed

    lengths = np.random.default_rng(0).integers(1, 11, size=103)
    perm = torch.randperm(103, generator=epoch_generator(0, 0))
    out = length_bucketed(perm, lengths, 8, 4, epoch_generator(0, 0))
    assert sorted(out.tolist()) == list(range(103))  # a reordering: each program once
    assert torch.equal(out, length_bucketed(perm, lengths, 8, 4, epoch_generator(0, 0)))  # same on every rank
    batches = out.split(8)
    assert len(batches[-1]) == 103 % 8 and all(len(b) == 8 for b in batches[:-1])  # the short batch last
    spread = np.mean([np.ptp(lengths[b.numpy()]) for b in batches[:-1]])
    shuffled = np.mean([np.ptp(lengths[b.numpy()]) for b in perm.split(8)[:-1]])
    assert spread < shuffled / 2  # within a batch, lengths far closer than under a plain shuffle
    # Training with it: the same programs per epoch, so the same samples_seen; a model that learns.
    data = synthetic_training_data(96, 6)
    _, _, h = train(data, TINY_MODEL, _cfg(epochs=6, length_bucket_window=2))
    _, _, plain = train(data, TINY_MODEL, _cfg(epochs=6))
    assert h["samples_seen"] == plain["samples_seen"] and h["train_loss"][-1] < h["train_loss"][0]
    with pytest.raises(ValueError, match="length_bucket_window"):
        TrainConfig(length_bucket_window=-1)


def test_checkpoint_every_sets_the_resume_point(tmp_path):
    state = tmp_path / "s.pt"
    with pytest.raises(Killed):
        train(synthetic_training_data(64, 4), TINY_MODEL, _cfg(epochs=6, checkpoint_every=2), state_path=state,
              on_epoch=_kill_after(2))
    assert load_training_state(state)["epoch"] == 1  # epochs 0-1 saved; epoch 2 was lost with the kill
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ data parallel

def test_torchrun_two_processes_train_one_model(tmp_path):
    out = tmp_path / "ddp"
    # Loopback only: gloo otherwise resolves the hostname to pick an interface, which can fail in CI sandboxes.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "cdmpp_tvm.training.ddp_check", "--out", str(out), "--epochs", "4",
                           "--programs", "96"], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["digest"] == r1["digest"]  # gradients were averaged: the same weights on both ranks
    data = synthetic_training_data(96, 6)
    n_train = len(split_by_group(data.groups, 0.15, 0)[0])
    assert r0["samples_seen"] == r1["samples_seen"] == math.ceil(n_train / 2) * 4  # each rank saw only its shard
    assert r0["train_loss"][-1] < r0["train_loss"][0]


# ------------------------------------------------------------------------------------------------ configs

def _write(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_config_errors_name_the_file_and_the_key(tmp_path):
    for data, key in [({"epochs": 3, "learning_rate": 1e-3}, "learning_rate"), ({"loss": "l1"}, "loss"),
                      ({"databases": ["a"], "split": "s.json"}, "split"), ({"databases": 3}, "databases"),
                      ({"model": {"depth": 2}}, "depth"), ({"hparam_search": {"trails": 3}}, "trails"),
                      ({"target_domain_databases": "split:test"}, "target_domain_databases"),
                      ({"out": ["a"]}, "out")]:
        path = _write(tmp_path / "bad.yaml", data)
        with pytest.raises(ConfigError) as e:
            load_train_job(path)
        assert path in str(e.value) and key in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match="no training data"):
        load_train_job(_write(tmp_path / "nodata.yaml", {"epochs": 2})).training_dirs()


def test_shipped_train_configs_load():
    for name in ("default", "cross-model", "cmd"):
        job = load_train_job(f"configs/train/{name}.yaml")
        assert job.train.cmd_weight == (1.0 if name == "cmd" else 0.0)
    assert load_train_config("configs/train/default.yaml")[1] == load_train_job("configs/train/default.yaml").train


def _fake_loader(monkeypatch, calls: list):
    """load_cached_training_data replaced by synthetic programs; records which directories were asked for."""
    import cdmpp_tvm.data.feature_cache as fc

    def fake(paths):
        calls.append(sorted(str(p) for p in paths))
        data = synthetic_training_data(48, 4, seed=len(calls))
        return data, {"targets": ["llvm"], "n_failed": 0, "n_databases": len(paths), "task_names": {}}
    monkeypatch.setattr(fc, "load_cached_training_data", fake)


def _split_file(tmp_path) -> str:
    split = {"kind": "cross-model", "held_out": ["net"], "root": str(tmp_path / "ds"), "train": ["a", "b"],
             "test": ["c"], "n_train_tasks": 2, "n_test_tasks": 1}
    (tmp_path / "split.json").write_text(json.dumps(split))
    return str(tmp_path / "split.json")


TINY_YAML = {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1, "d_ff": 64, "embed_dim": 32,
                       "regressor_hidden": [32]},
             "epochs": 2, "batch_size": 16, "warmup_steps": 2, "device": "cpu", "progress": False}


def test_cli_train_reads_data_and_outputs_from_the_config(tmp_path, monkeypatch):
    calls: list = []
    _fake_loader(monkeypatch, calls)
    cfg = _write(tmp_path / "t.yaml", {**TINY_YAML, "split": _split_file(tmp_path), "out": str(tmp_path / "m.pt"),
                                       "state_path": str(tmp_path / "m.state.pt"), "cmd_weight": 0.5,
                                       "target_domain_databases": "split:test", "tree_head_weight": 0.3})
    assert cli.main(["train", "--config", cfg]) == 0
    ds = tmp_path / "ds"
    assert calls == [[str(ds / "a"), str(ds / "b")], [str(ds / "c")]]  # train dirs; test dirs only as CMD target
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck.info["train_config"]["cmd_weight"] == 0.5 and ck.model.cfg.d_model == 32
    assert ck.tree_head.weight == 0.3 and ck.info["history"]["tree_head"]["rounds"] >= 1
    assert load_training_state(tmp_path / "m.state.pt")["epoch"] == 1

    # Flags win over the file: --database, --out, --epochs, --resume-state (continues the saved run).
    calls.clear()
    assert cli.main(["train", "--config", cfg, "--database", str(tmp_path / "x"), "--out", str(tmp_path / "o.pt"),
                     "--epochs", "3", "--resume-state", str(tmp_path / "m.state.pt")]) == 0
    assert calls[0] == [str(tmp_path / "x")] and (tmp_path / "o.pt").exists()
    assert load_training_state(tmp_path / "m.state.pt")["epoch"] == 2

    # Errors are reported, not raised.
    assert cli.main(["train", "--config", _write(tmp_path / "bad.yaml", {"epochs": 2, "lr": "fast"})]) == 2
    assert cli.main(["train", "--config", _write(tmp_path / "noout.yaml", {**TINY_YAML, "databases": ["d"]})]) == 2


def test_hparam_search_api_writes_a_config_train_can_use(tmp_path):
    data = synthetic_training_data(64, 4)
    base = load_train_job(_write(tmp_path / "base.yaml", {**TINY_YAML, "epochs": 50, "databases": ["db"],
                                                          "out": "ck/m.pt", "state_path": "ck/m.state.pt"}))
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    study = search_hparams(data, base.model, base.train, 2, trial_epochs=2, storage=storage, study_name="s", seed=0)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(t.user_attrs["epochs_run"] <= 2 for t in study.trials)
    assert set(study.best_trial.params) == set(SPACE)
    assert all(math.isfinite(t.value) and t.value > 0 for t in study.trials)

    best = best_job(study, base)
    assert best.train.epochs == 50 and best.train.lr == study.best_params["lr"]
    # Its outputs do not collide with the base run's (a resume from the base's state would be wrong).
    assert (best.out, best.state_path) == ("ck/m-tuned.pt", "ck/m-tuned.state.pt")
    assert best.model.d_model == study.best_params["d_model"] and best.model.n_layers == study.best_params["n_layers"]
    write_train_config(best, tmp_path / "best.yaml", "best of 2")
    again = load_train_job(tmp_path / "best.yaml")
    assert again.model == best.model and again.train == best.train and again.databases == ["db"]

    # Resumable: the same study with 3 trials runs one more, with new parameters.
    study = search_hparams(data, base.model, base.train, 3, trial_epochs=2, storage=storage, study_name="s", seed=0)
    assert len(study.trials) == 3 and study.trials[2].params != study.trials[0].params


def test_hparam_search_keeps_the_log_label_for_a_work_offset_model(tmp_path):
    from dataclasses import replace

    base = load_train_job(_write(tmp_path / "base.yaml", {**TINY_YAML, "databases": ["db"]}))
    model = replace(base.model, work_offset=True)
    assert set(space_for(model)) == set(SPACE) - {"label_transform"} and set(space_for(base.model)) == set(SPACE)
    # Every trial trains (a Box-Cox trial would raise: the work offset needs the log label).
    study = search_hparams(synthetic_training_data(64, 4), model, base.train, 4, trial_epochs=1, seed=0)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert all("label_transform" not in t.params for t in study.trials)


def test_cli_tune_hparams_then_train(tmp_path, monkeypatch):
    calls: list = []
    _fake_loader(monkeypatch, calls)
    cfg = _write(tmp_path / "t.yaml", {**TINY_YAML, "databases": [str(tmp_path / "db")],
                                       "hparam_search": {"trials": 2, "epochs": 1}})
    assert cli.main(["tune-hparams", "--config", cfg, "--out", str(tmp_path / "best.yaml"),
                     "--storage", f"sqlite:///{tmp_path / 'sub' / 'hp.db'}", "--study-name", "t"]) == 0
    assert cli.main(["train", "--config", str(tmp_path / "best.yaml"), "--out", str(tmp_path / "m.pt"),
                     "--epochs", "1"]) == 0
    assert load_checkpoint(tmp_path / "m.pt").model.cfg.d_model in (64, 128, 256)
