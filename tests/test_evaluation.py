"""Accuracy metrics, the PerStoreFeature cache, the XGB / MLP baselines and ``cdmpp-tvm evaluate``."""
import json
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cdmpp_tvm.evaluation import (
    compute_metrics,
    format_metrics_table,
    log_ratios,
    median_log_ratio,
    task_labels,
    topk_score,
)

BOOTSTRAP = Path(__file__).resolve().parent.parent / "data" / "bootstrap-cpu-znver1.tar.xz"
TASK = "GMM-0"  # one task of the bootstrap dataset: 64 records
TASKS = (TASK, "C2D-0", "DEP-0")


# ---------------------------------------------------------------------------------------------- metrics

def test_perfect_prediction():
    true = np.array([1e-3, 2e-3, 3e-3, 5e-3, 8e-3, 13e-3])
    r = compute_metrics(true.copy(), true, ["a"] * 6)
    o = r["overall"]
    assert o["mape"] == 0 and o["rmse"] == 0
    assert o["spearman"] == pytest.approx(1) and o["kendall"] == pytest.approx(1)
    assert o["top1"] == 1 and o["top5"] == 1
    assert o["n_records"] == 6 and o["n_tasks"] == 1
    assert [t["task"] for t in r["per_task"]] == ["a"]


def test_reversed_ranking_and_known_errors():
    true = np.arange(1, 8) * 1e-3  # 1..7 ms
    pred = true[::-1].copy()  # 7..1 ms: the fastest program is predicted slowest
    t = compute_metrics(pred, true, np.zeros(7, dtype=int))["per_task"][0]
    assert t["spearman"] == pytest.approx(-1) and t["kendall"] == pytest.approx(-1)
    assert t["top1"] == pytest.approx(1 / 7)  # picks the 7 ms program
    assert t["top5"] == pytest.approx(1 / 3)  # the 5 predicted fastest are 7, 6, 5, 4, 3 ms
    assert t["mape"] == pytest.approx(np.mean(np.abs(pred - true) / true))
    # MAPE is a fraction; RMSE is in milliseconds.
    r = compute_metrics([2.0, 1.0], [1.0, 2.0], ["x", "x"])["overall"]
    assert r["mape"] == pytest.approx(0.75) and r["rmse"] == pytest.approx(1000.0)


def test_spread_of_predictions_within_a_task():
    true = np.array([1.0, 2.0, 4.0, 8.0, 3.0, 3.0, 5.0, 5.0, 7.0]) * 1e-3
    groups = ["a"] * 4 + ["b"] * 2 + ["c"] * 3
    # Task a predicted as true^2 (ms): ranking perfect, ln-spread doubled; b: constant latency; c: ranked
    # right, compressed to half the spread.
    pred = np.concatenate([(true[:4] * 1e3) ** 2 * 1e-3, true[4:6], np.exp(0.5 * np.log(true[6:]))])
    r = compute_metrics(pred, true, groups)
    spread = {t["task"]: t["spread"] for t in r["per_task"]}
    assert spread["a"] == pytest.approx(2.0) and spread["b"] is None and spread["c"] == pytest.approx(0.5)
    assert r["overall"]["spread"] == pytest.approx(1.25)  # median of 2.0 and 0.5
    assert r["per_task"][0]["spearman"] == pytest.approx(1)
    # A task of one program measured twice has no spread either.
    assert compute_metrics([1e-3, 1e-3], [1e-3, 1.1e-3], ["x", "x"], ["p", "p"])["overall"]["spread"] is None


def test_topk_score_small_example():
    true = np.array([4.0, 1.0, 3.0, 2.0])
    pred = np.array([0.1, 0.4, 0.2, 0.3])  # predicted order: 0, 2, 3, 1
    assert topk_score(pred, true, 1) == pytest.approx(1 / 4)
    assert topk_score(pred, true, 2) == pytest.approx(1 / 3)
    assert topk_score(pred, true, 3) == pytest.approx(1 / 2)
    assert topk_score(pred, true, 4) == 1 and topk_score(pred, true, 10) == 1


def test_ranking_is_per_task_and_averaged_over_tasks():
    # Task a: perfect order; task b: reversed. Ranked together they would look almost perfect.
    true = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]) * 1e-3
    pred = np.array([1.0, 2.0, 3.0, 30.0, 20.0, 10.0]) * 1e-3
    groups = ["a", "a", "a", "b", "b", "b"]
    r = compute_metrics(pred, true, groups)
    by_task = {t["task"]: t for t in r["per_task"]}
    assert by_task["a"]["spearman"] == pytest.approx(1) and by_task["b"]["spearman"] == pytest.approx(-1)
    assert r["overall"]["spearman"] == pytest.approx(0)
    assert r["overall"]["top1"] == pytest.approx((1 + 10 / 30) / 2)
    assert r["overall"]["n_tasks"] == 2


def test_undefined_ranking_is_none_and_skipped():
    true = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 7.0]) * 1e-3
    pred = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 1.0]) * 1e-3
    groups = ["ok", "ok", "ok", "flat", "flat", "single"]
    r = compute_metrics(pred, true, groups)
    by_task = {t["task"]: t for t in r["per_task"]}
    assert by_task["single"]["spearman"] is None and by_task["single"]["top1"] is None
    assert by_task["flat"]["spearman"] is None and by_task["flat"]["kendall"] is None
    assert by_task["flat"]["top1"] == 1  # any pick is a best program
    assert r["overall"]["spearman"] == pytest.approx(1)  # only "ok" counts
    assert r["overall"]["n_tasks"] == 3 and r["overall"]["n_records"] == 6
    # Constant predictions for latencies that differ carry no ranking: 0, not an error.
    t = compute_metrics([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], ["c"] * 3)["per_task"][0]
    assert t["spearman"] == 0 and t["kendall"] == 0
    json.dumps(r)  # plain JSON values only


def test_a_task_measuring_one_program_is_not_ranked():
    # Task "one": the same program measured 4 times (an injective task's whole design space); its
    # latencies differ by noise only. Task "two": two programs, ranked perfectly.
    true = np.array([1.00, 1.02, 0.99, 1.01, 1.0, 2.0]) * 1e-3
    pred = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 2.0]) * 1e-3
    groups = ["one"] * 4 + ["two"] * 2
    programs = ["p", "p", "p", "p", "q", "r"]
    without = compute_metrics(pred, true, groups)
    assert without["overall"]["spearman"] == pytest.approx(0.5)  # the noise task's 0 drags the mean down
    r = compute_metrics(pred, true, groups, programs)
    by_task = {t["task"]: t for t in r["per_task"]}
    assert by_task["one"]["n_programs"] == 1 and all(by_task["one"][k] is None for k in ("spearman", "top1", "top5"))
    assert by_task["one"]["mape"] == pytest.approx(without["per_task"][0]["mape"])  # errors still count
    assert r["overall"]["spearman"] == pytest.approx(1) and r["overall"]["n_ranked_tasks"] == 1
    assert r["overall"]["mape"] == pytest.approx(without["overall"]["mape"])
    with pytest.raises(ValueError, match="programs must have shape"):
        compute_metrics(pred, true, groups, programs[:3])


def test_program_keys_identify_programs_by_their_leaves():
    from cdmpp_tvm.evaluation import program_keys
    from cdmpp_tvm.features import FEATURE_DIM, CompactAST

    empty = np.zeros(0, dtype=np.int32)
    leaves = np.random.default_rng(0).random((3, FEATURE_DIM), dtype=np.float32)

    def ast(features, positions):
        return CompactAST(features, np.asarray(positions, dtype=np.int32), empty, empty, empty)

    keys = program_keys([ast(leaves, [1, 4, 6]), ast(leaves.copy(), [1, 4, 6]), ast(leaves, [1, 4, 7]),
                         ast(leaves[:2], [1, 4])])
    assert keys[0] == keys[1] and len(set(keys.tolist())) == 3


@pytest.mark.parametrize("pred, true, groups, match", [
    ([1.0, 2.0], [1.0], ["a", "a"], "same length"),
    ([[1.0, 2.0]], [[1.0, 2.0]], ["a", "a"], "1-D"),
    ([1.0, -2.0], [1.0, 2.0], ["a", "a"], "pred_s must be finite latencies > 0"),
    ([1.0, 2.0], [0.0, 2.0], ["a", "a"], "true_s must be finite latencies > 0"),
    ([1.0, np.nan], [1.0, 2.0], ["a", "a"], "pred_s"),
    ([1.0, 2.0], [1.0, np.inf], ["a", "a"], "true_s"),
    ([], [], [], "no records"),
    ([1.0, 2.0], [1.0, 2.0], [["a", "a"]], "groups must be a 1-D"),
])
def test_compute_metrics_rejects_bad_input(pred, true, groups, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(pred, true, groups)


def test_format_metrics_table_names_units_and_tasks():
    r = compute_metrics([1e-3, 2e-3, 4e-3], [1e-3, 2e-3, 3e-3], ["conv", "conv", "dense"])
    text = format_metrics_table(r, title="model X")
    assert text.splitlines()[0] == "model X"
    assert "RMSE (ms)" in text and "MAPE 11.1%" in text
    rows = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert set(rows) >= {"conv", "dense"} and "n/a" in rows["dense"]  # one record: no ranking


def test_median_log_ratio_is_the_robust_scale_and_skips_undefined_pairs():
    measured = [2.0, 4.0, None, 1.0, 3.0, 0.0]
    predicted = [1.0, 1.0, 1.0, 1.0, float("nan"), 1.0]
    r = log_ratios(measured, predicted)
    assert np.allclose(r[[0, 1, 3]], np.log([2.0, 4.0, 1.0])) and np.isnan(r[[2, 4, 5]]).all()
    assert median_log_ratio(measured, predicted) == pytest.approx(math.log(2.0))
    # one wild outlier does not move it; no defined pair gives the neutral 0
    assert median_log_ratio([2.0, 2.0, 2.0, 1e6], [1.0] * 4) == pytest.approx(math.log(2.0))
    assert median_log_ratio([None], [1.0]) == 0.0
    with pytest.raises(ValueError, match=r"\(2,\) measured"):
        log_ratios([1.0, 2.0], [1.0])


def test_task_labels_are_names_kept_unique():
    keys = np.array(["k1", "k2", "k3", "k1"])
    labels = task_labels(keys, {"k1": "conv", "k2": "conv", "k3": "dense"})
    assert labels[2] == "dense" and labels[0] == labels[3]
    assert labels[0] != labels[1] and labels[0].startswith("conv")
    one_device = task_labels(keys, {"k1": "conv", "k2": "conv", "k3": "dense"}, np.array(["llvm/znver5"] * 4))
    assert one_device.tolist() == labels.tolist()  # one device: labels unchanged


def test_task_labels_split_a_task_measured_on_two_devices_so_it_is_ranked_per_device():
    keys = np.array(["k1", "k1", "k1", "k1"])
    devices = np.array(["llvm/znver4", "llvm/znver4", "llvm/znver5", "llvm/znver5"])
    labels = task_labels(keys, {"k1": "conv"}, devices)
    assert labels.tolist() == ["conv @ llvm/znver4"] * 2 + ["conv @ llvm/znver5"] * 2
    # ranked per device: predictions that order each device's two programs right score 1 on both groups,
    # although across devices the znver5 programs are faster than the znver4 ones predicted faster
    true_s = np.array([2.0, 1.0, 0.2, 0.1])
    pred_s = np.array([0.3, 0.25, 2.0, 1.5])
    result = compute_metrics(pred_s, true_s, labels)
    assert result["overall"]["n_ranked_tasks"] == 2 and result["overall"]["top1"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- baselines

def synthetic_programs(n_tasks=10, per_task=30, seed=0):
    """PerStoreFeature-like programs: 1-3 rows of 164 non-negative features; latency is a sum over
    rows of a function of two columns, times a per-task scale carried by a third column."""
    rng = np.random.default_rng(seed)
    X, lat, groups = [], [], []
    for task in range(n_tasks):
        scale = 2.0 ** task
        for _ in range(per_task):
            rows = np.zeros((rng.integers(1, 4), 164), dtype=np.float32)
            rows[:, :2] = rng.uniform(0, 6, (len(rows), 2))
            rows[:, 2] = task
            rows[:, 3:10] = rng.uniform(0, 1, (len(rows), 7))  # noise columns
            X.append(rows)
            lat.append(1e-6 * scale * np.sum(2.0 ** rows[:, 0] + 4 * rows[:, 1]))
            groups.append(f"task{task}")
    return X, np.array(lat), np.array(groups)


def _split(X, lat, groups, test_tasks=("task3", "task6")):
    def pick(mask):
        return [X[i] for i in np.nonzero(mask)[0]], lat[mask], groups[mask]

    is_test = np.isin(groups, test_tasks)
    return pick(~is_test), pick(is_test)


@pytest.mark.parametrize("make", ["xgb", "mlp"])
def test_baseline_learns_synthetic_latency_and_round_trips(make, tmp_path):
    from cdmpp_tvm.baselines import MLPConfig, SegmentSumMLP, XGBBaseline

    (X, lat, groups), (Xt, lat_t, groups_t) = _split(*synthetic_programs(per_task=100))
    if make == "xgb":
        model, path = XGBBaseline(max_rounds=300, n_threads=1), tmp_path / "xgb.json"
    else:
        model, path = SegmentSumMLP(MLPConfig(max_epochs=80, patience=15), n_threads=1), tmp_path / "mlp.pt"
    model.fit(X, lat, groups)
    pred = model.predict(Xt)
    assert pred.shape == (len(Xt),) and np.all(np.isfinite(pred)) and np.all(pred > 0)
    m = compute_metrics(pred, lat_t, groups_t)["overall"]
    constant = compute_metrics(np.full(len(lat_t), np.exp(np.log(lat).mean())), lat_t, groups_t)["overall"]
    assert m["spearman"] > 0.8, m
    assert m["mape"] < 0.5 * constant["mape"], (m, constant)
    model.save(path)
    loaded = type(model).load(path)
    np.testing.assert_allclose(loaded.predict(Xt), pred, rtol=1e-5)
    if make == "xgb":
        # Row scores are kept within what the trees gave the training rows (saved with the model); a
        # narrower range clips, bounds every program's latency by its rows and is counted.
        assert loaded.row_score_range == model.row_score_range and model.last_clipped_rows == 0
        low, high = model.row_score_range
        assert low < high
        model.row_score_range = (-0.1, 0.1)
        bounded = model.predict(Xt)
        n_rows = np.array([len(x) for x in Xt])
        assert np.all(bounded <= np.exp(model.intercept + 0.1) * n_rows * (1 + 1e-6))
        assert np.all(bounded >= np.exp(model.intercept - 0.1) * n_rows * (1 - 1e-6))
        assert model.last_clipped_rows > 0


def test_xgb_objective_step_is_bounded_by_the_residual_for_rows_of_tiny_share():
    """A row with a tiny share s of its program's latency gets gradient residual * s; with the
    Gauss-Newton Hessian s^2 (and MetaSchedule's min_child_weight 0) a leaf of such rows took the step
    -g/h = -residual / s, and training rows scored ~1e13 (k-fold, stop 27). The Hessian used bounds the
    curvature of log-sum-exp (diag(s) >= diag(s) - s s^T), so no row's Newton step exceeds its residual."""
    from cdmpp_tvm.baselines.xgb import _PackedPrograms

    rows = [np.zeros((2, 164), np.float32), np.zeros((3, 164), np.float32)]
    packed = _PackedPrograms(rows, y=np.array([-1.0, 2.0]))
    scores = np.array([0.0, np.log(1e-3), 1.0, np.log(1e-4), -3.0])  # rows of shares ~1 and ~1e-3, 1e-4
    grad, hess = packed.squared_error(scores, None)
    residual = (packed.log_sum_exp(scores) - packed.y)[packed.ids]
    assert np.all(hess > 0)
    np.testing.assert_allclose(grad, residual * np.exp(scores - packed.log_sum_exp(scores)[packed.ids]))
    assert np.all(np.abs(grad / hess) <= np.abs(residual) * (1 + 1e-9)), grad / hess
    # A leaf of many such rows: its value -sum(g)/sum(h) stays a share-weighted mean residual.
    assert abs(grad.sum() / hess.sum()) <= np.abs(residual).max()


@pytest.mark.parametrize("make", ["xgb", "mlp"])
def test_baseline_validates_shapes(make):
    from cdmpp_tvm.baselines import MLPConfig, SegmentSumMLP, XGBBaseline

    model = XGBBaseline(max_rounds=5, n_threads=1) if make == "xgb" else SegmentSumMLP(MLPConfig(max_epochs=2))
    X, lat, groups = synthetic_programs(n_tasks=3, per_task=8)
    with pytest.raises(RuntimeError, match="fit or load"):
        model.predict(X)
    with pytest.raises(ValueError, match="list of"):
        model.fit(np.zeros((5, 164)), lat[:5], groups[:5])
    with pytest.raises(ValueError, match="latency_s must have shape"):
        model.fit(X, lat[:-1], groups)
    with pytest.raises(ValueError, match="finite and > 0"):
        model.fit(X, -lat, groups)
    with pytest.raises(ValueError, match="features per row"):
        model.fit([*X[:-1], np.zeros((2, 100), np.float32)], lat, groups)
    model.fit(X, lat, groups)
    with pytest.raises(ValueError, match="164"):
        model.predict([np.zeros((2, 100), np.float32)])
    # A program with no rows (PerStoreFeature gives none for a program that only stores constants) is valid.
    pred = model.predict([np.zeros((0, 164), np.float32), X[0]])
    assert pred.shape == (2,) and np.all(np.isfinite(pred)) and np.all(pred > 0)


# ---------------------------------------------------------------------------------------------- real database

@pytest.fixture(scope="module")
def bootstrap_tasks(tmp_path_factory) -> Path:
    """Three task directories of the bundled bootstrap dataset (64 records each), unpacked once."""
    out = tmp_path_factory.mktemp("bootstrap")
    with tarfile.open(BOOTSTRAP, "r:xz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and any(m.name.startswith(f"./{t}/") for t in TASKS)]
        tar.extractall(out, members=members, filter="data")
    return out


@pytest.fixture(scope="module")
def bootstrap_task(bootstrap_tasks) -> Path:
    return bootstrap_tasks / TASK


def test_per_store_feature_cache(bootstrap_task, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    from cdmpp_tvm.data.feature_cache import (
        CACHE_FILE,
        PER_STORE,
        featurize_database,
        load_cached_features,
        load_cached_training_data,
    )
    from cdmpp_tvm.data import RECORD_FILE, read_database

    db = tmp_path / TASK
    shutil.copytree(bootstrap_task, db)
    cache = featurize_database(db, progress=False, kind=PER_STORE)
    assert cache == db / "features.perstore.npz" and not (db / CACHE_FILE).exists()
    with np.load(cache) as z:
        feats, offsets, record_id = z["features"], z["row_offsets"], z["record_id"]
        assert str(z["feature_schema"]) == PER_STORE.schema
    assert feats.shape[1] == 164 and feats.dtype == np.float32
    assert len(offsets) == 65 and offsets[0] == 0 and offsets[-1] == len(feats)
    assert np.all(np.diff(offsets) >= 1)  # every program here writes at least one buffer
    # Same rows as MetaSchedule's own extractor on the replayed record.
    rec = read_database(db).records[5]
    assert record_id[5] == f"{RECORD_FILE}:6"
    ctx = ms.TuneContext(mod=rec.workload_mod, target=rec.target, num_threads=1)
    direct = ms.feature_extractor.PerStoreFeature().extract_from(ctx, [rec.record.as_measure_candidate()])[0].numpy()
    np.testing.assert_allclose(feats[offsets[5]:offsets[6]], direct, rtol=1e-6)
    # Fresh: not rewritten. Stale after the database changes: rebuilt with the new record.
    mtime = cache.stat().st_mtime_ns
    assert featurize_database(db, progress=False, kind=PER_STORE) == cache and cache.stat().st_mtime_ns == mtime
    lines = (db / RECORD_FILE).read_text().splitlines()
    (db / RECORD_FILE).write_text("\n".join(lines + [lines[0]]) + "\n")
    features, facts = load_cached_features([tmp_path], PER_STORE, progress=False)
    assert len(features) == 65 and facts["n_databases"] == 1 and facts["task_names"] == {features.groups[0]: TASK}
    np.testing.assert_array_equal(features.rows["features"][64], features.rows["features"][0])
    assert features.record_ids[64].endswith(f"{RECORD_FILE}:65")
    # The compact-AST cache is a separate file, built by the same machinery, and unchanged in use.
    data, _ = load_cached_training_data([tmp_path])
    assert (db / CACHE_FILE).exists() and len(data) == 65
    np.testing.assert_array_equal(data.latencies, features.latencies)


def test_evaluate_cli_on_a_real_database(bootstrap_task, tmp_path, capsys):
    from cdmpp_tvm.cli import main

    db = tmp_path / "dataset" / TASK
    shutil.copytree(bootstrap_task, db)
    (db / "task.json").write_text(json.dumps({"name": "gemm-small", "workload": "w", "tags": []}))
    out = tmp_path / "metrics" / "eval.json"
    assert main(["evaluate", "--checkpoint", "llvm-cpu", "--database", str(tmp_path / "dataset"),
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RMSE (ms)" in printed and "gemm-small" in printed
    result = json.loads(out.read_text())
    assert {"overall", "per_task", "checkpoint", "databases"} <= set(result)
    o = result["overall"]
    assert set(o) == {"mape", "rmse", "spearman", "kendall", "top1", "top5", "spread", "n_records", "n_tasks",
                      "n_ranked_tasks"}
    assert o["n_records"] == 64 and o["n_tasks"] == 1 and o["n_ranked_tasks"] == 1
    assert all(math.isfinite(o[k]) for k in ("mape", "rmse", "spearman", "kendall", "top1", "top5"))
    # GMM-0 is in the bundled checkpoint's training data (bootstrap set): its ranking must be far better than chance.
    assert o["spearman"] > 0.3 and 0 < o["top5"] <= 1 and 0 < o["mape"] < 10
    (task,) = result["per_task"]
    assert task["task"] == "gemm-small" and task["n_records"] == 64
    assert not list(out.parent.glob(".*tmp*"))  # written atomically, no leftovers
    # The test part of a split file, its root replaced (a moved dataset): the same records.
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"kind": "cross-model", "held_out": ["n"], "root": "/elsewhere",
                                 "train": ["other-task"], "test": [TASK]}))
    out2 = tmp_path / "split-eval.json"
    assert main(["evaluate", "--checkpoint", "llvm-cpu", "--split", str(split), "--database",
                 str(tmp_path / "dataset"), "--json", str(out2)]) == 0
    assert json.loads(out2.read_text())["overall"] == o


def test_evaluate_cli_errors(bootstrap_task, tmp_path, capsys):
    from cdmpp_tvm.cli import main
    from cdmpp_tvm.data import RECORD_FILE

    failed_only = tmp_path / "failed" / TASK
    shutil.copytree(bootstrap_task, failed_only)
    wl, (trace, _, target, args_info) = json.loads((failed_only / RECORD_FILE).read_text().splitlines()[0])
    (failed_only / RECORD_FILE).write_text(json.dumps([wl, [trace, [1e10], target, args_info]]) + "\n")
    assert main(["evaluate", "--checkpoint", "llvm-cpu", "--database", str(failed_only)]) == 2
    assert "no valid records in 1 database(s) (1 failed runs)" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "no-such-model", "--database", str(failed_only)]) == 2
    assert "neither a file nor a bundled checkpoint" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--checkpoint", "llvm-cpu", "--database", str(tmp_path / "empty")]) == 2
    assert "no MetaSchedule databases" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "llvm-cpu", "--database", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "llvm-cpu"]) == 2
    assert "--database" in capsys.readouterr().err


def test_kfold_benchmark_scores_each_fold_resumes_and_keeps_the_final_test_apart(bootstrap_tasks, tmp_path):
    """benchmarks/kfold.py on three real tasks: two folds (one task held out each), CDMPP trained per fold
    with a tiny config, XGB and MLP beside it; a rerun trains nothing; a changed split file stops it."""
    import subprocess
    import sys

    splits = tmp_path / "splits"
    splits.mkdir()

    def write_split(stem, test):
        train = [t for t in TASKS if t != test]
        (splits / f"{stem}.json").write_text(json.dumps(
            {"kind": "family-fold", "held_out": [test], "root": str(bootstrap_tasks), "train": train,
             "test": [test], "n_train_tasks": len(train), "n_test_tasks": 1}))

    write_split("fold-a", "GMM-0")
    write_split("fold-b", "C2D-0")
    write_split("final-test", "DEP-0")
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {d_model: 16, n_heads: 2, n_layers: 1, d_ff: 32, embed_dim: 16, regressor_hidden: [16]}\n"
                      "epochs: 2\nbatch_size: 32\nval_fraction: 0.0\ndevice: cpu\nprogress: false\n")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "kfold.py"
    out, work = tmp_path / "results", tmp_path / "work"

    def run(*extra):
        return subprocess.run([sys.executable, str(script), "--splits", str(splits), "--train-config", str(config),
                               "--name", "t", "--out-dir", str(out), "--work-dir", str(work),
                               "--mlp-time-limit", "5", *extra], capture_output=True, text=True, timeout=600)

    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((out / "kfold-t.json").read_text())
    assert set(summary["folds"]) == {"fold-a", "fold-b"}  # the final test is no fold
    assert not (out / "kfold-t" / "final-test.json").exists() and not (work / "t" / "final-test.pt").exists()
    fold_a = json.loads((out / "kfold-t" / "fold-a.json").read_text())
    assert fold_a["n_test_tasks"] == 1 and fold_a["n_test_records"] == 64 and fold_a["n_train_tasks"] == 2
    assert [t["task"] for t in fold_a["models"]["CDMPP"]["per_task"]] == ["GMM-0"]
    for name in ("CDMPP", "XGB", "MLP"):
        mapes = [summary["folds"][f]["models"][name]["mape"] for f in ("fold-a", "fold-b")]
        stat = summary["summary"][name]["mape"]
        assert stat["mean"] == pytest.approx(np.mean(mapes)) and stat["std"] == pytest.approx(np.std(mapes, ddof=1))
        assert stat["n_folds"] == 2
    text = (out / "kfold-t.md").read_text()
    assert "| CDMPP |" in text and " ± " in text and (out / "kfold-t.png").exists()
    # kfold_blend on the same folds: w = 0 is the run's own CDMPP, w = 1 its XGB (trained again, same records).
    blend_script = script.with_name("kfold_blend.py")
    blend = subprocess.run([sys.executable, str(blend_script), "--name", "t", "--out-dir", str(out), "--weights", "0.5", "1"],
                           capture_output=True, text=True, timeout=600)
    assert blend.returncode == 0, blend.stderr[-2000:]
    report = json.loads((out / "kfold-blend-t.json").read_text())
    assert report["meta"]["weights"] == [0.0, 0.5, 1.0] and set(report["folds"]) == {"fold-a", "fold-b"}
    for fold in ("fold-a", "fold-b"):
        scored = summary["folds"][fold]["models"]
        for w, model in (("0", "CDMPP"), ("1", "XGB")):
            for metric in ("mape", "spearman", "top1"):
                assert report["folds"][fold][w][metric] == pytest.approx(scored[model][metric], rel=1e-3, abs=1e-6)
    assert report["summary"]["0.5"]["mape"]["n_folds"] == 2 and "| 0.5 |" in (out / "kfold-blend-t.md").read_text()
    # Trees on the compact AST's leaf features instead (what the tuner computes anyway): a report of its own.
    leaves = subprocess.run([sys.executable, str(blend_script), "--name", "t", "--out-dir", str(out), "--weights", "1",
                             "--tree-features", "compact-ast", "--folds", "fold-a"], capture_output=True, text=True, timeout=600)
    assert leaves.returncode == 0, leaves.stderr[-2000:]
    on_leaves = json.loads((out / "kfold-blend-t-compact-ast.json").read_text())
    assert on_leaves["meta"]["tree_features"] == "compact-ast" and set(on_leaves["folds"]) == {"fold-a"}
    # (Two training tasks: both tree models extrapolate badly to the third, MAPE ~85x on either rows.)
    assert np.isfinite(on_leaves["folds"]["fold-a"]["1"]["mape"]) and on_leaves["folds"]["fold-a"]["1"]["n_records"] == 64
    assert on_leaves["folds"]["fold-a"]["0"]["spearman"] == pytest.approx(report["folds"]["fold-a"]["0"]["spearman"])
    missing = subprocess.run([sys.executable, str(blend_script), "--name", "none", "--out-dir", str(out)],
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "no fold results" in missing.stderr and missing.stderr.count("\n") == 1
    # Resumed: nothing trained or scored again.
    ckpt = work / "t" / "fold-a.pt"
    mtime = ckpt.stat().st_mtime_ns
    again = run()
    assert again.returncode == 0 and "fold-a: done earlier" in again.stdout and ckpt.stat().st_mtime_ns == mtime
    # The final test only on request, into its own report.
    final = run("--final-test")
    assert final.returncode == 0, final.stderr[-2000:]
    assert set(json.loads((out / "final-test-t.json").read_text())["folds"]) == {"final-test"}
    assert run("--folds", "final-test").returncode == 2
    # A split file that changed after its fold ran (the dataset grew) stops the run with one line.
    write_split("fold-a", "DEP-0")
    changed = run()
    assert changed.returncode == 2 and "fold-a.json: changed since" in changed.stderr
    assert changed.stderr.count("\n") == 1


def test_kfold_compare_pairs_folds_and_counts_where_the_new_recipe_is_better(tmp_path, capsys, load_benchmark_script):
    """benchmarks/kfold_compare.py on fold results written as kfold.py writes them."""
    kfold_compare = load_benchmark_script("kfold_compare")

    def write_fold(run, fold, cdmpp, digest="d1"):
        overall = lambda **kw: {"mape": 0.5, "spearman": 0.5, "kendall": 0.4, "top1": 0.6, "top5": 0.8,
                                "spread": 1.0, **kw}
        result = {"fold": fold, "split_digest": digest, "held_out": [fold[5:]],
                  "models": {"CDMPP": {"overall": overall(**cdmpp)}, "XGB": {"overall": overall(mape=0.7)},
                             "MLP": {"overall": overall(mape=0.8)}}}
        (tmp_path / f"kfold-{run}").mkdir(exist_ok=True)
        (tmp_path / f"kfold-{run}" / f"{fold}.json").write_text(json.dumps(result))

    write_fold("old", "fold-a", {"mape": 0.60, "top1": 0.70, "spread": 1.3})
    write_fold("old", "fold-b", {"mape": 0.40, "top1": 0.80, "spread": 1.2})
    write_fold("old", "fold-c", {"mape": 0.40})  # scored by the base run only
    write_fold("new", "fold-a", {"mape": 0.45, "top1": 0.75, "spread": 1.05})
    write_fold("new", "fold-b", {"mape": 0.42, "top1": 0.70, "spread": 0.9})
    args = ["--base", "old", "--new", "new", "--out-dir", str(tmp_path)]
    assert kfold_compare.main(args) == 0
    c = json.loads((tmp_path / "kfold-compare-old-vs-new.json").read_text())
    assert set(c["folds"]) == {"fold-a", "fold-b"} and c["unpaired_folds"]["base_only"] == ["fold-c"]
    mape = c["summary"]["mape"]
    assert mape["diff_mean"] == pytest.approx(-0.065) and mape["folds_better"] == 1 and mape["n_folds"] == 2
    assert mape["diff_std"] == pytest.approx(np.std([-0.15, 0.02], ddof=1))
    assert c["summary"]["top1"]["folds_better"] == 1
    assert c["summary"]["spread"]["folds_better"] == 2  # 1.3 -> 1.05 and 1.2 -> 0.9 are both closer to 1
    assert c["folds"]["fold-a"]["XGB"]["mape"] == 0.7
    text = (tmp_path / "kfold-compare-old-vs-new.md").read_text()
    assert "| MAPE | 50.0% | 43.5% | -6.5% ± 12.0% | 1 of 2 |" in text
    # Folds scored on different split files, or no shared fold: one line, exit code 2.
    write_fold("new", "fold-b", {"mape": 0.42}, digest="d2")
    assert kfold_compare.main(args) == 2
    assert "fold-b: the runs were scored on different split files" in capsys.readouterr().err
    assert kfold_compare.main(["--base", "old", "--new", "none", "--out-dir", str(tmp_path)]) == 2
    assert "no fold results" in capsys.readouterr().err
