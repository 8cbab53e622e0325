"""The network, the label transform and checkpoints (no tuning here)."""
import math
import os

import numpy as np
import pytest
import torch

from cdmpp_tvm.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cdmpp_tvm.data.dataset import TrainingData, split_by_group
from cdmpp_tvm.features import FEATURE_DIM, CompactAST, sinusoidal_encoding
from cdmpp_tvm.model import CDMPPNet, LabelTransform, ModelConfig
from cdmpp_tvm.model.inference import predict_transformed
from cdmpp_tvm.model.tree_head import TreeHead
from cdmpp_tvm.training import TrainConfig, train

SMALL = ModelConfig(d_model=32, n_heads=2, n_layers=1, d_ff=64, embed_dim=32, regressor_hidden=[32])


def _ast(n_leaves: int, seed: int) -> CompactAST:
    rng = np.random.default_rng(seed)
    return CompactAST(rng.normal(size=(n_leaves, FEATURE_DIM)).astype(np.float32),
                      np.arange(1, n_leaves + 1, dtype=np.int32) * 2, np.zeros(1, np.int32), np.zeros(1, np.int32),
                      np.ones(1, np.int32))


def test_sinusoidal_encoding_is_the_standard_one():
    pe = sinusoidal_encoding(torch.tensor([0, 3, 7]), 8)
    for r, p in enumerate([0, 3, 7]):
        for k in range(4):
            angle = p / 10000 ** (2 * k / 8)
            assert math.isclose(pe[r, 2 * k].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[r, 2 * k + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_padding_does_not_change_a_prediction():
    torch.manual_seed(0)
    model = CDMPPNet(SMALL).eval()
    short, long = _ast(2, 1), _ast(9, 2)
    alone = predict_transformed(model, [short], None, 8, torch.device("cpu"))
    padded = predict_transformed(model, [short, long], None, 8, torch.device("cpu"))
    assert np.allclose(alone[0], padded[0], atol=1e-5)


@pytest.mark.parametrize("method", ["log", "box-cox"])
def test_label_transform_round_trip(method):
    lat = np.exp(np.random.default_rng(0).uniform(np.log(1e-6), np.log(1.0), 200))
    lt = LabelTransform.fit(lat, method)
    y = lt.transform(lat)
    assert abs(y.mean()) < 1e-6 and abs(y.std() - 1) < 1e-3
    assert np.allclose(lt.inverse(y), lat, rtol=1e-6)
    assert LabelTransform.from_dict(lt.to_dict()) == lt
    with pytest.raises(ValueError):
        lt.transform(np.array([1e-3, 0.0]))


def test_group_split_never_shares_a_group():
    groups = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4 + ["d"] * 2)
    tr, va = split_by_group(groups, 0.25, seed=0)
    assert len(va) and set(groups[tr]).isdisjoint(groups[va])
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(groups)))


def _tiny_trained():
    asts = [_ast(1 + i % 4, i) for i in range(48)]
    lat = np.exp(np.array([a.leaf_features[:, 0].mean() for a in asts]) - 7)  # learnable from the features
    data = TrainingData(asts, lat, np.array([f"t{i % 4}" for i in range(48)]))
    model, lt, hist = train(data, SMALL, TrainConfig(epochs=3, batch_size=16, warmup_steps=2, device="cpu"))
    return asts, model, lt, hist


def test_training_data_shapes_are_validated():
    with pytest.raises(ValueError, match="latencies"):
        TrainingData([_ast(1, 0)], np.array([1e-3, 2e-3]), np.array(["t"]))
    with pytest.raises(ValueError, match="> 0"):
        TrainingData([_ast(1, 0)], np.array([-1.0]), np.array(["t"]))


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    asts, model, lt, hist = _tiny_trained()
    assert len(hist["train_loss"]) == 3
    path = tmp_path / "c.pt"
    save_checkpoint(path, model, lt, {"name": "test-device"}, {"note": "unit test"})
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # the atomic write cleaned up
    ck = load_checkpoint(path)
    before = predict_transformed(model, asts, None, 16, torch.device("cpu"))
    after = predict_transformed(ck.model, asts, None, 16, torch.device("cpu"))
    assert np.array_equal(before, after)
    assert ck.label_transform == lt and ck.device["name"] == "test-device" and ck.info["note"] == "unit test"


def test_corrupt_truncated_or_mismatched_checkpoints_fail_clearly(tmp_path):
    _, model, lt, _ = _tiny_trained()
    good = tmp_path / "good.pt"
    save_checkpoint(good, model, lt, {"name": "d"})
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    for name in ("trunc.pt", "noise.pt"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)
    payload = torch.load(good, weights_only=True)
    payload["feature_schema"] = "compact-ast-v0"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="compact-ast-v0"):
        load_checkpoint(tmp_path / "old.pt")
    payload = torch.load(good, weights_only=True)
    payload["state_dict"].pop("input_proj.weight")
    torch.save(payload, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_checkpoint(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="neither a file nor a bundled checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_tree_head_blends_in_log_space_survives_a_checkpoint_and_recalibrates(tmp_path):
    asts, model, lt, _ = _tiny_trained()
    lat = np.array([np.exp(a.leaf_features[:, 0] - 7).sum() for a in asts])  # a sum over leaves, as pack-sum fits
    head = TreeHead.fit(TrainingData(asts, lat, np.array([f"t{i % 4}" for i in range(48)])), 0.25, n_threads=1)
    trees = head.predict_latency_s(asts)
    assert np.corrcoef(np.log(trees), np.log(lat))[0, 1] > 0.8  # the trees learnt the feature
    save_checkpoint(tmp_path / "h.pt", model, lt, {"name": "d"}, tree_head=head)
    ck = load_checkpoint(tmp_path / "h.pt")
    alone = ck.predict_latency_s(asts, with_tree_head=False)
    assert np.allclose(alone, lt.inverse(predict_transformed(model, asts, None, 16, torch.device("cpu"))))
    assert np.allclose(ck.predict_latency_s(asts), np.exp(0.75 * np.log(alone) + 0.25 * np.log(trees)), rtol=1e-6)
    # The trees' latencies passed in (one tree pass for several transformers) give the same blend; the
    # wrong number of them is refused.
    transformed = lt.transform(alone)
    assert np.allclose(ck.latency_s(transformed, asts, ck.trees_latency_s(asts)), ck.latency_s(transformed, asts))
    with pytest.raises(ValueError, match="tree predictions"):
        ck.latency_s(transformed, asts, trees[:-1])
    # Recalibrated to a device 3x slower, the trees predict 3x what they predict recalibrated to this one,
    # centred on the measurements (median log ratio 0), in the same order.
    same, slower = (head.recalibrated(asts, k * lat).predict_latency_s(asts) for k in (1, 3))
    assert np.allclose(slower / same, 3.0, rtol=1e-6) and abs(np.median(np.log(3 * lat / slower))) < 1e-6
    assert np.array_equal(np.argsort(slower), np.argsort(trees))
    # A version-1 file (no tree head) still loads; a broken tree head names the file.
    payload = torch.load(tmp_path / "h.pt", weights_only=True)
    v1 = {k: v for k, v in payload.items() if k != "tree_head"} | {"format_version": 1}
    torch.save(v1, tmp_path / "v1.pt")
    assert load_checkpoint(tmp_path / "v1.pt").tree_head is None
    payload["tree_head"]["trees_ubj"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="broken.pt.*tree head"):
        load_checkpoint(tmp_path / "broken.pt")


def test_work_offset_adds_ln_work_over_the_label_std_and_survives_a_checkpoint(tmp_path):
    from dataclasses import replace

    from cdmpp_tvm.features import FEATURE_NAMES
    from cdmpp_tvm.model.network import log_work

    # Two programs alike but for their float-op and byte counts (slog values): 1,000 vs 1,000,000 ops.
    asts = [_ast(3, 0), _ast(3, 0)]
    for a, amount in zip(asts, (1e3, 1e6)):
        a.leaf_features[:, :] = 0.0
        a.leaf_features[0, FEATURE_NAMES.index("float_mul")] = np.log2(amount + 1)
        a.leaf_features[1, FEATURE_NAMES.index("buf0_bytes")] = np.log2(amount + 1)
    lat = np.array([1e-4, 1e-1])
    lt = LabelTransform.fit(np.array([1e-5, 1e-3, 1e-1]), "log")
    with_offset = CDMPPNet(replace(SMALL, work_offset=True)).eval()
    with_offset.set_work_offset(5.0, lt.std)
    plain = CDMPPNet(SMALL).eval()
    plain.load_state_dict({k: v for k, v in with_offset.state_dict().items() if not k.startswith("work_")})
    cpu = torch.device("cpu")
    offset = predict_transformed(with_offset, asts, None, 16, cpu) - predict_transformed(plain, asts, None, 16, cpu)
    assert offset == pytest.approx((np.log1p(2 * np.array([1e3, 1e6])) - 5.0) / lt.std, rel=1e-5)
    feats = torch.from_numpy(np.stack([a.leaf_features for a in asts]))
    assert log_work(feats, torch.ones(2, 3, dtype=torch.bool)).numpy() == pytest.approx(np.log1p([2e3, 2e6]), rel=1e-6)
    # Trained with it: the offset is centred on the training programs and saved with the weights.
    cfg = TrainConfig(epochs=2, batch_size=2, warmup_steps=1, device="cpu", progress=False, val_fraction=0.0)
    model, lt2, _ = train(TrainingData(asts, lat, np.array(["t", "t"])), replace(SMALL, work_offset=True), cfg)
    assert float(model.work_mean) == pytest.approx(np.log1p([2e3, 2e6]).mean(), rel=1e-5)
    assert float(model.work_scale) == pytest.approx(1 / lt2.std)
    save_checkpoint(tmp_path / "w.pt", model, lt2, {"name": "test-device"}, {})
    loaded = load_checkpoint(tmp_path / "w.pt").model
    assert np.array_equal(predict_transformed(model, asts, None, 4, cpu), predict_transformed(loaded, asts, None, 4, cpu))
    with pytest.raises(ValueError, match="work_offset needs the log label transform"):
        train(TrainingData(asts, lat, np.array(["t", "t"])), replace(SMALL, work_offset=True),
              replace(cfg, label_transform="box-cox"))
