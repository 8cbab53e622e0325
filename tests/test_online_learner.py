"""The learner of the task at hand (boosted residual trees) and the per-task guard, on real candidates
of real tasks: unit checks, then a small real tuning run."""
import numpy as np
import pytest
from scipy.stats import spearmanr
from tvm.s_tir import meta_schedule as ms

from cdmpp_tvm import CDMPPCostModel, OnlineConfig
from cdmpp_tvm.cost_model.boosted import BoostedConfig, BoostedLearner, TaskBooster, program_vectors
from cdmpp_tvm.cost_model.exploration import FreshBatchSpread, thompson_noise_ratio
from cdmpp_tvm.cost_model.online import Guard
from cdmpp_tvm.features import FEATURE_DIM, CompactASTFeaturizer
from cdmpp_tvm.tuning import tune
from cdmpp_tvm.workloads import load_workload
from tvm_patches.candidates import sample_candidates


def _measured(latencies):
    return [ms.runner.RunnerResult(run_secs=[float(x)], error_msg=None) for x in latencies]


def test_program_vectors_shape_and_validation(host_target):
    task = load_workload("conv2d-small", host_target)[0]
    asts = CompactASTFeaturizer().featurize([c.sch.mod for c in sample_candidates(task.mod, host_target, 5, seed=0)],
                                            False)
    x = program_vectors(asts, np.ones((5, 7)), first_leaves=3)
    assert x.shape == (5, 3 * FEATURE_DIM + FEATURE_DIM + 1 + 7) and x.dtype == np.float32
    assert program_vectors(asts, None, first_leaves=2).shape == (5, 3 * FEATURE_DIM + 1)
    with pytest.raises(ValueError, match="5 programs but 4 embeddings"):
        program_vectors(asts, np.ones((4, 7)), first_leaves=3)
    with pytest.raises(ValueError, match=r"expected \(5,\)"):
        TaskBooster(BoostedConfig()).fit(x, np.zeros(5), np.zeros(4))


def test_booster_with_no_signal_is_its_base_and_learns_a_residual():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    base = rng.normal(size=200)
    # A residual the trees can learn (a step in feature 0) on top of a base they must keep.
    y = base + np.where(x[:, 0] > 0, 1.0, -1.0)
    booster = TaskBooster(BoostedConfig(n_estimators=60)).fit(x[:150], y[:150], base[:150])
    pred = booster.predict(x[150:], base[150:])
    assert np.mean(np.abs(pred - y[150:])) < 0.25 < np.mean(np.abs(base[150:] - y[150:]))
    # Nothing to learn beyond the base: predictions stay the base.
    flat = TaskBooster(BoostedConfig()).fit(x, base, base)
    assert np.allclose(flat.predict(x, base), base, atol=1e-3)


def test_learner_labels_failures_bounds_programs_and_cross_validates():
    rng = np.random.default_rng(1)
    learner = BoostedLearner(BoostedConfig(min_programs=8, max_programs=40), failure_latency_factor=2.0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    lat = np.exp(x[:, 0]).tolist()
    lat[3] = None
    learner.add("t", x[:6], np.zeros(6), lat[:6])
    assert learner.fit("t", cross_validate=True) is None and not learner.has_model("t")  # under min_programs
    learner.add("t", x[6:], np.zeros(24), lat[6:])
    oof = learner.fit("t", cross_validate=True)
    assert learner.has_model("t") and oof is not None and oof > 0.7  # latency = exp(x0): learnable
    _, y, _ = learner._labelled("t")
    assert y[3] == pytest.approx(np.log(2.0 * max(v for v in lat if v is not None)))
    learner.add("t", x, np.zeros(30), lat)
    assert len(learner.programs["t"][0]) == 40  # the latest max_programs only


def test_guard_picks_per_task_the_model_that_ranked_fresh_batches_best():
    guard = Guard(momentum=0.5)
    labels = np.arange(10.0)
    good, bad = labels.copy(), -labels
    assert guard.choose("a") == "online"  # nothing measured: the online model (= the pretrained one)
    guard.track("a", {"anchor": good, "online": bad}, labels)
    guard.track("b", {"anchor": bad, "online": good}, labels)
    assert guard.choose("a", ("online", "anchor")) == "anchor"
    assert guard.choose("b", ("online", "anchor")) == "online"
    guard.enter("a", "boosted", 0.9)  # out-of-fold evidence, below the anchor's perfect record
    assert guard.choose("a", ("boosted", "online", "anchor")) == "anchor"
    guard.track("a", {"anchor": bad, "online": bad, "boosted": good}, labels)
    assert guard.choose("a", ("boosted", "online", "anchor")) == "boosted"
    guard.enter("a", "boosted", 0.0)  # entering again never overwrites what fresh batches showed
    assert guard.choose("a", ("boosted", "online", "anchor")) == "boosted"
    assert guard.choose("c", ("online", "anchor")) in {"online", "anchor"}  # unseen task: the global record


def test_cost_model_learns_a_task_the_prior_gets_backwards(host_target):
    """True latencies in the reverse order of the pretrained model's (1 / its prediction): after three
    measured batches the cost model ranks held-out candidates of the task the right way round, through a
    learner it picked on evidence."""
    task = load_workload("conv2d-small", host_target)[0]
    cands = sample_candidates(task.mod, host_target, 112, seed=7)
    ctx = ms.TuneContext(mod=task.mod, target=host_target, task_name=task.name)
    # Steps bounded by count, not by the clock: the run is the same on a loaded machine.
    cm = CDMPPCostModel(online=OnlineConfig(max_steps_per_update=4, time_budget_s=600.0))
    prior = 1e-3 / cm.predict(ctx, cands)
    truth = prior.min() * prior.max() / prior  # the prior's order, reversed
    for b in range(3):
        sl = slice(32 * b, 32 * (b + 1))
        cm.update(ctx, cands[sl], _measured(truth[sl]))
    rho = spearmanr(cm.predict(ctx, cands[96:]), 1.0 / truth[96:]).statistic
    s = cm.stats()
    assert rho > 0.5, rho
    assert s["boosted_fits"] == 3 and s["boosted_tasks"] == 1 and s["fallbacks"] == 0
    assert s["predictions_by_model"]["anchor"] == 0  # the prior, which ranks backwards, was never trusted after
    # Frozen, the same model keeps ranking backwards: the learning above is the online learners'.
    frozen = CDMPPCostModel(online=OnlineConfig(enabled=False))
    for b in range(3):
        frozen.update(ctx, cands[32 * b:32 * (b + 1)], _measured(truth[32 * b:32 * (b + 1)]))
    assert spearmanr(frozen.predict(ctx, cands[96:]), 1.0 / truth[96:]).statistic < -0.5


def test_small_real_tuning_run_fits_the_boosted_learner(host_target, tmp_path):
    task = load_workload("matmul-small", host_target)
    cm = CDMPPCostModel(boosted=BoostedConfig(min_programs=8, max_programs=16))
    result = tune(task, host_target, trials=32, work_dir=str(tmp_path), cost_model=cm, trials_per_iter=8,
                  progress=False, population_size=64)
    assert result.tasks[0].best_latency_s is not None
    s = cm.stats()
    assert s["fallbacks"] == 0 and s["records_seen"] == 32 and s["update_calls"] == 4
    assert s["boosted_fits"] >= 3 and s["boosted_tasks"] == 1  # from the first batch of 8 on
    assert len(cm._learner.programs[next(iter(cm._learner.programs))][0]) == 16  # bounded per task
    assert s["online_steps"] <= 4 * cm.online.max_steps_per_update
    assert sum(s["predictions_by_model"].values()) == s["predict_calls"]


def test_score_exponent_sharpens_scores_without_changing_their_order(host_target):
    """score_exponent k: scores are the plain scores to the k-th power (the search's top-k by rank is the
    same; its parent sampling goes to the programs predicted fast); k <= 0 is refused."""
    from cdmpp_tvm.cost_model.stats import stats_line

    task = load_workload("conv2d-small", host_target)[0]
    cands = sample_candidates(task.mod, host_target, 48, seed=3)
    ctx = ms.TuneContext(mod=task.mod, target=host_target, task_name=task.name)
    plain = CDMPPCostModel(online=OnlineConfig(enabled=False)).predict(ctx, cands)
    sharp_model = CDMPPCostModel(online=OnlineConfig(enabled=False), score_exponent=4.0)
    sharp = sharp_model.predict(ctx, cands)
    assert plain.max() == pytest.approx(1.0) and plain.min() < 0.9
    assert np.allclose(sharp, plain ** 4, rtol=1e-9)
    assert list(np.argsort(-sharp, kind="stable")) == list(np.argsort(-plain, kind="stable"))
    assert "48 candidates scored in 1 predict calls" in stats_line(sharp_model.stats())
    with pytest.raises(ValueError, match="score_exponent"):
        CDMPPCostModel(score_exponent=0.0)


def test_fresh_batch_spread_ignores_a_constant_factor_and_falls_back_to_the_prior():
    spread = FreshBatchSpread(momentum=0.5)
    labels = np.geomspace(1e-4, 1e-2, 16)
    assert spread.residual("a", "anchor") == spread.predicted("a", "anchor") == 0.0  # nothing measured yet
    spread.track("a", {"anchor": 3.0 * labels, "online": labels[::-1]}, labels)
    assert spread.residual("a", "anchor") == pytest.approx(0.0, abs=1e-12)  # right up to a factor: ranks right
    backwards = float(np.std(np.log(labels) - np.log(labels[::-1])))
    assert spread.residual("a", "online") == pytest.approx(backwards)
    assert spread.predicted("a", "anchor") == spread.predicted("a", "online") == pytest.approx(np.std(np.log(labels)))
    assert spread.residual("a", "boosted") == spread.residual("a", "anchor")  # no fresh batch of its own yet
    spread.track("a", {"anchor": labels[::-1]}, labels)
    assert spread.residual("a", "anchor") == pytest.approx(0.5 * backwards)  # moving average


def test_thompson_noise_ratio_falls_from_random_search_at_chance_to_none_at_a_perfect_ranking():
    assert thompson_noise_ratio(1.0) == 0.0
    assert thompson_noise_ratio(0.5) == thompson_noise_ratio(0.2) == pytest.approx(np.sqrt(1 - 0.05 ** 2) / 0.05)
    ratios = [thompson_noise_ratio(a) for a in (0.55, 0.65, 0.75, 0.85, 0.95)]
    assert all(a > b > 0 for a, b in zip(ratios, ratios[1:]))
    # Kendall tau 0.5 (accuracy 0.75) is a correlation of sin(pi / 4) for a bivariate normal: noise = prediction.
    assert thompson_noise_ratio(0.75) == pytest.approx(1.0)


@pytest.mark.parametrize("explore_by", ["ranking", "residual"])
@pytest.mark.parametrize("prior_right", [True, False])
def test_explore_adds_score_noise_only_where_the_model_ranked_the_task_poorly(host_target, prior_right, explore_by):
    """explore > 0: before anything is measured, and on a task whose measured latencies the prior ranks
    exactly (up to a factor), the scores are those of the same model without exploration; on a task it
    ranks backwards they are not (Thompson sampling scaled by its ranking accuracy or residual spread)."""
    task = load_workload("conv2d-small", host_target)[0]
    cands = sample_candidates(task.mod, host_target, 64, seed=5)
    ctx = ms.TuneContext(mod=task.mod, target=host_target, task_name=task.name)
    online = OnlineConfig(max_steps_per_update=2, time_budget_s=600.0)

    def scores(explore):
        cm = CDMPPCostModel(online=online, explore=explore, explore_by=explore_by)
        first = cm.predict(ctx, cands[32:])
        prior = 1e-3 / cm.predict(ctx, cands[:32])
        truth = 2.0 * prior if prior_right else prior.min() * prior.max() / prior
        cm.update(ctx, cands[:32], _measured(truth))
        return first, cm.predict(ctx, cands[32:]), cm.stats()["explored_predict_calls"]

    first_plain, plain, _ = scores(0.0)
    first_explore, explored, n_explored = scores(1.0)
    assert np.array_equal(first_plain, first_explore)
    if prior_right:  # its residual spread is 0 up to rounding, its ranking accuracy 1
        assert np.allclose(plain, explored, rtol=1e-6)
    else:
        assert n_explored == 1 and not np.allclose(plain, explored)
        assert explored.max() == pytest.approx(1.0) and explored.min() > 0
    with pytest.raises(ValueError, match="explore"):
        CDMPPCostModel(explore=-1.0)
    with pytest.raises(ValueError, match="explore_by"):
        CDMPPCostModel(explore=1.0, explore_by="variance")
