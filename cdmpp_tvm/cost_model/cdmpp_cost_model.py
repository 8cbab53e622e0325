"""``CDMPPCostModel``: the CDMPP predictor as a MetaSchedule cost model.

    from cdmpp_tvm import CDMPPCostModel
    ms.tune_tasks(..., cost_model=CDMPPCostModel())

* ``predict``: compact-AST featurization (cached by structural hash) + batched transformer inference
  (CUDA when available, else CPU), blended with the checkpoint's tree head when it has one
  (``model/tree_head.py``; the pretrained and online transformers alike). Score = ((lowest predicted
  latency in the call) / (predicted latency)) ** ``score_exponent``, in (0, 1], higher = faster. MetaSchedule's
  evolutionary search measures the top-scored programs (by rank) and picks the parents it mutates with
  probability proportional to the score (0.27: ``PerThreadData::Set`` -> ``MakeMultinomialSampler``), so
  the exponent sets how much mutation goes to programs predicted fast rather than to the whole population.
  With ``explore`` > 0 the predicted latencies get Thompson-sampling noise first (``exploration.py``).
* ``update``: online learning from every measured batch. A run failure is evidence of a bad schedule:
  it is learnt as ``failure_latency_factor`` x the slowest valid latency measured for that task. Each
  call trains for at most ``online.time_budget_s`` seconds.
* The learner of the task at hand (``boosted.py``): per task, boosted trees on its measured programs,
  fitted to the residual of the pretrained log latency after every update.
* Guard (``online.Guard``): per task, the pretrained ("anchor"), online and boosted models predict each
  fresh batch before anything learns from it; the task's predictions come from whichever ranked its
  fresh batches best, so noisy updates cannot wreck a good pretrained model (``stats()["predictions_by_model"]``).
* New device (a descriptor the checkpoint was not trained on; logged, ``stats()["new_device"]``): it adapts
  from measurements: online training, boosting, and a per-task latency calibration of the transformers,
  exp(median log(measured / predicted)), a constant per task that leaves the ranking unchanged.
* Failure safety: an exception in ``predict`` is logged, counted, and the call returns uniform random
  scores (a random-search step); one in ``update`` is logged, counted and the batch skipped.
"""
from __future__ import annotations

import copy
import logging
import time
import traceback

import numpy as np
import torch
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.cost_model import PyCostModel
from tvm.s_tir.meta_schedule.utils import shash2hex

from ..model.checkpoint import (
    Checkpoint,
    load_checkpoint,
    pretrained_for_target,
    save_checkpoint,
)
from ..device import device_descriptor, device_name
from ..features import CompactAST, CompactASTFeaturizer, is_gpu_target, native_status
from ..model import CDMPPNet, LabelTransform, ModelConfig
from ..data.reader import latency_of
from ..model.inference import (
    OOMSplitCounter,
    default_torch_device,
    predict_transformed,
)
from ..torch_threads import torch_threads
from .boosted import BoostedConfig, BoostedLearner, program_vectors
from .exploration import Exploration
from .stats import fallback_count, log_stats_at_exit, new_counters, stats_line
from .online import (
    Guard,
    LatencyCalibration,
    fresh_batch_error,
    OnlineConfig,
    ReplayBuffer,
    latest_valid_per_task,
    pairwise_accuracy,
    train_online_steps,
)

logger = logging.getLogger("cdmpp_tvm.cost_model")


@derived_object
class CDMPPCostModel(PyCostModel):
    """CDMPP cost model.

    Parameters
    ----------
    checkpoint : a checkpoint path, the name of a bundled checkpoint, or None to pick the bundled one
        for the target being tuned (logged). ``"scratch"`` starts from an untrained model.
    device : "auto" (CUDA if available), "cpu" or "cuda".
    batch_size : programs per inference batch.
    num_threads : torch CPU threads while the model runs (restored afterwards); None keeps torch's setting.
        The default 1 is fastest inside a tuner, whose own threads use the other cores.
    online : online-learning settings (``OnlineConfig``); ``OnlineConfig(enabled=False)`` freezes the model.
    boosted : the per-task boosted learner's settings (``BoostedConfig``); ``BoostedConfig(enabled=False)``
        leaves the choice to the pretrained and online models.
    score_exponent : > 0; 1 makes a program predicted twice as slow half as likely a parent, 4 a sixteenth.
    explore : >= 0; the scale of the Thompson-sampling noise on scores (``exploration.py``); 0 turns it off.
    explore_by : "ranking" or "residual": what sets that noise (``exploration.py``).
    """

    def __init__(self, checkpoint: str | None = None, device: str = "auto", batch_size: int = 1024,
                 online: OnlineConfig | None = None, num_threads: int | None = 1, seed: int = 0,
                 boosted: BoostedConfig | None = None, score_exponent: float = 1.0, explore: float = 0.0,
                 explore_by: str = "ranking"):
        super().__init__()
        if not score_exponent > 0:
            raise ValueError(f"CDMPPCostModel: score_exponent must be > 0, got {score_exponent!r}")
        self.score_exponent = float(score_exponent)
        self.checkpoint_spec = checkpoint
        self.torch_device = default_torch_device(device)
        self.batch_size = batch_size
        self.num_threads = num_threads if self.torch_device.type == "cpu" else None
        self.online = online or OnlineConfig()
        self.boosted = boosted or BoostedConfig()
        self._learner = BoostedLearner(self.boosted, self.online.failure_latency_factor, seed)
        self.featurizer = CompactASTFeaturizer()
        # Load (on a first run: compile, 5-20 s, logged) the compiled featurizer now, not in the first predict.
        native_status()
        self._rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self._ckpt: Checkpoint | None = None
        self.model: CDMPPNet | None = None
        self._anchor: CDMPPNet | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._device_vecs: dict[str, np.ndarray] = {}
        self._buffer = ReplayBuffer(self.online.buffer_size, self.online.failure_latency_factor)
        self._guard = Guard(self.online.guard_momentum)
        self._exploration = Exploration(explore, explore_by, self.online.guard_momentum, seed)
        self._calibration = LatencyCalibration(self.online.calibration_window)
        self._online_calibration_stale = False
        self._new_device: dict[str, bool] = {}  # target string -> not a device the checkpoint was trained on
        self._oom = OOMSplitCounter()
        self._fresh_errors: list[dict] = []  # per update: error on the batch before training on it
        self._stats = new_counters()
        log_stats_at_exit(self)
        if checkpoint is not None:
            self._load(checkpoint)

    # ---------------------------------------------------------------------------------------------
    # MetaSchedule interface
    def predict(self, context: ms.TuneContext, candidates: list[ms.MeasureCandidate]) -> np.ndarray:
        start = time.perf_counter()
        self._stats["predict_calls"] += 1
        try:
            with torch_threads(self.num_threads):
                scores = self._scores(context, candidates)
        except Exception:  # noqa: BLE001 - a tuning job must survive a cost model failure
            self._stats["predict_fallbacks"] += 1
            logger.error("CDMPPCostModel.predict failed on task %r with %d candidates; returning random scores "
                         "for this call (fallback #%d):\n%s", _task_name(context), len(candidates),
                         self._stats["predict_fallbacks"], traceback.format_exc())
            scores = self._rng.uniform(0.0, 1.0, size=len(candidates))
        self._stats["predict_seconds"] += time.perf_counter() - start
        return np.asarray(scores, dtype="float64")

    def update(self, context: ms.TuneContext, candidates: list[ms.MeasureCandidate],
               results: list[ms.runner.RunnerResult]) -> None:
        start = time.perf_counter()
        self._stats["update_calls"] += 1
        try:
            with torch_threads(self.num_threads):
                self._update(context, candidates, results)
        except Exception:  # noqa: BLE001
            self._stats["update_fallbacks"] += 1
            logger.error("CDMPPCostModel.update failed on task %r with %d results; skipping this batch "
                         "(fallback #%d):\n%s", _task_name(context), len(results), self._stats["update_fallbacks"],
                         traceback.format_exc())
        self._stats["update_seconds"] += time.perf_counter() - start

    def predict_latency(self, context: ms.TuneContext, candidates: list[ms.MeasureCandidate]) -> np.ndarray:
        """Predicted latency in seconds of each candidate on the context's target: the prediction of the
        model the guard trusts for the task; the pretrained and online models' times their calibration
        factor for the task (1 until something of this device was measured), the boosted learner's as
        it is (it learnt the task's latencies). Unlike ``predict``, exceptions propagate."""
        if not candidates:
            return np.zeros(0)
        with torch_threads(self.num_threads):
            self._ensure_model(context)
            dev_vec, task = self._device_vec(context), shash2hex(context.mod)
            name = self._choice(task)
            lat = self._latency_of(name, task, self._featurize(context, candidates), dev_vec)
            return lat * self._calibration_in_use(name, task, dev_vec)

    def load(self, path: str) -> None:
        self._load(path)

    def save(self, path: str) -> None:
        """Save the current transformer as a normal checkpoint: the online-updated model, or the pretrained
        one where the guard found it ranks fresh batches better over all tasks. The per-task boosted
        learners are not saved: they belong to the tasks tuned."""
        model = self._pretrained() if self._anchor is not None and self._guard.prefers_anchor() else self.model
        if model is None:
            raise RuntimeError("CDMPPCostModel.save: no model yet (load a checkpoint or tune first)")
        info = dict(self._ckpt.info if self._ckpt else {})
        info["online_updates"] = {k: self._stats[k] for k in ("update_calls", "records_seen", "online_steps")}
        save_checkpoint(path, model, self._ckpt.label_transform, self._ckpt.device, info, self._ckpt.tree_head)

    # ---------------------------------------------------------------------------------------------
    def stats(self) -> dict:
        s = dict(self._stats)
        native = native_status()
        s["predictions_by_model"] = dict(s["predictions_by_model"])
        s.update(boosted_fits=self._learner.fits, boosted_fit_seconds=self._learner.fit_seconds,
                 boosted_tasks=len(self._learner.boosters), featurize_seconds=self.featurizer.seconds, cache_hits=self.featurizer.hits,
                 native_featurizer=native["loaded"], python_featurizer_programs=native["fallback_calls"],
                 cache_misses=self.featurizer.misses, cache_hit_rate=self.featurizer.hit_rate,
                 oom_batch_splits=self._oom.splits, fallbacks=fallback_count(self._stats),
                 guard_uses_anchor=self._anchor is not None and self._guard.prefers_anchor(), checkpoint=self._ckpt.path if self._ckpt else None,
                 torch_device=str(self.torch_device), new_device=any(self._new_device.values()),
                 calibrated_tasks=len(self._calibration.tasks()),
                 fresh_batch_errors=list(self._fresh_errors))
        return s

    def log_stats(self, level: int = logging.INFO) -> None:
        logger.log(level, stats_line(self.stats()))

    # ---------------------------------------------------------------------------------------------
    def _load(self, spec: str) -> None:
        if spec == "scratch":
            model = CDMPPNet(ModelConfig())
            self._ckpt = Checkpoint(model, LabelTransform(), {"name": "untrained"}, {}, "scratch")
        else:
            self._ckpt = load_checkpoint(spec)
            logger.info("CDMPPCostModel: loaded checkpoint %s (trained on %s)", self._ckpt.path,
                        self._ckpt.device.get("name"))
        self.model = self._ckpt.model.to(self.torch_device)
        if self._ckpt.tree_head is not None:  # its trees share the tuner's cores like torch does
            self._ckpt.tree_head.trees.n_threads = self.num_threads
        self._anchor = None  # made lazily, at the first online step
        self._opt = None
        self._calibration = LatencyCalibration(self.online.calibration_window)
        self._online_calibration_stale = False
        self._new_device = {}

    def _ensure_model(self, context: ms.TuneContext) -> None:
        if self.model is not None:
            return
        name = pretrained_for_target(context.target)
        if name is None:
            logger.warning("CDMPPCostModel: no bundled checkpoint for target kind %r; starting from an untrained "
                           "model that learns online", context.target.kind.name)
            self._load("scratch")
        else:
            logger.info("CDMPPCostModel: using bundled checkpoint %r for %s", name, device_name(context.target))
            self._load(name)

    def _device_vec(self, context: ms.TuneContext) -> np.ndarray:
        key = str(context.target)
        if key not in self._device_vecs:
            self._device_vecs[key] = device_descriptor(context.target)
        if key not in self._new_device and self._ckpt is not None:
            trained = self._ckpt.trained_descriptors()
            vec = self._device_vecs[key]
            self._new_device[key] = not any(t.shape == vec.shape and np.allclose(t, vec, atol=1e-6) for t in trained)
            if self._new_device[key]:
                logger.info("CDMPPCostModel: %s is not a device checkpoint %s was trained on (%s); adapting to it "
                            "from measurements (online training, latency calibration)", device_name(context.target),
                            self._ckpt.path, self._ckpt.device.get("name"))
        return self._device_vecs[key]

    def _featurize(self, context, candidates) -> list[CompactAST]:
        return self.featurizer.featurize([c.sch.mod for c in candidates], is_gpu_target(context.target))

    def _calibration_in_use(self, name: str, task: str, dev_vec: np.ndarray) -> float:
        """Calibration factor of model ``name`` for ``task`` (1 for the boosted learner, which learnt the
        task's latencies); the online model's is recomputed first when updates made it stale."""
        if name == "boosted":
            return 1.0
        if name == "online" and self._online_calibration_stale:
            self._refresh_online_calibration(dev_vec)
        return self._calibration.factor(name, task)

    def _record_fresh_error(self, context, task: str, batch, fresh: dict[str, np.ndarray], dev_vec) -> None:
        """Error on a measured batch before learning from it (``online.fresh_batch_error``) of what
        ``predict_latency`` would have said and of the pretrained model as loaded, so
        ``stats()["fresh_batch_errors"]`` shows how the model adapts to a task and device as trials accrue."""
        name = self._choice(task)
        entry = fresh_batch_error(batch, fresh[name] * self._calibration_in_use(name, task, dev_vec), fresh["anchor"])
        if entry is not None:
            self._fresh_errors.append({"records_before": self._stats["records_seen"], "task": _task_name(context),
                                       "model": name} | entry)

    def _choice(self, task: str) -> str:
        """The model that predicts ``task``: "boosted", "online" or "anchor" (the guard's choice among
        those that exist; before the first online step the online model is the pretrained one)."""
        available = ("boosted",) if self.boosted.enabled and self._learner.has_model(task) else ()
        available += ("online", "anchor") if self._anchor is not None else ("online",)
        return self._guard.choose(task, available)

    def _pretrained(self) -> CDMPPNet:
        """The model as loaded: the frozen anchor once online training started, until then the model itself."""
        return self._anchor if self._anchor is not None else self.model

    def _latency_of(self, name: str, task: str, asts: list[CompactAST], dev_vec) -> np.ndarray:
        """Latency (s, uncalibrated) of the programs as model ``name`` predicts it for ``task``."""
        if name == "boosted":
            base, emb = self._pretrained_latency(asts, dev_vec)
            return np.exp(self._learner.predict(task, self._vectors(asts, emb), np.log(base)))
        return self._predict_latency(self.model if name == "online" else self._pretrained(), asts, dev_vec)

    def _pretrained_latency(self, asts: list[CompactAST], dev_vec, trees=None) -> tuple[np.ndarray, np.ndarray]:
        """Pretrained latency (N,) > 0 and program embedding (N, embed_dim): the boosted learner's base, inputs.
        ``trees``: the tree head's latencies of ``asts`` when already computed (``_predict_latency`` too)."""
        t = time.perf_counter()
        y, emb = predict_transformed(self._pretrained(), asts, dev_vec, self.batch_size, self.torch_device,
                                     want_embedding=True, oom=self._oom)
        self._stats["inference_seconds"] += time.perf_counter() - t
        return np.maximum(self._ckpt.latency_s(y, asts, trees), 1e-12), emb

    def _vectors(self, asts: list[CompactAST], emb: np.ndarray) -> np.ndarray:
        return program_vectors(asts, emb if self.boosted.use_embedding else None, self.boosted.first_leaves)

    def _predict_latency(self, model: CDMPPNet, asts: list[CompactAST], dev_vec: np.ndarray, trees=None) -> np.ndarray:
        t = time.perf_counter()
        y = predict_transformed(model, asts, dev_vec, self.batch_size, self.torch_device, oom=self._oom)
        self._stats["inference_seconds"] += time.perf_counter() - t
        return self._ckpt.latency_s(y, asts, trees)

    def _scores(self, context, candidates) -> np.ndarray:
        if not candidates:
            return np.zeros(0)
        self._ensure_model(context)
        task = shash2hex(context.mod)
        name = self._choice(task)
        lat = self._latency_of(name, task, self._featurize(context, candidates), self._device_vec(context))
        if not np.all(np.isfinite(lat)):
            raise FloatingPointError(f"non-finite predicted latency for {int((~np.isfinite(lat)).sum())} candidates "
                                     f"(model {name})")
        self._stats["candidates_scored"] += len(candidates)
        self._stats["predictions_by_model"][name] += 1
        lat = np.maximum(lat, 1e-12)
        lat, explored = self._exploration.perturb(lat, task, name, self._guard.task_accuracy(task, name))
        self._stats["explored_predict_calls"] += int(explored)
        return (lat.min() / lat) ** self.score_exponent

    # ---------------------------------------------------------------------------------------------
    def _update(self, context, candidates, results) -> None:
        self._ensure_model(context)
        if len(candidates) != len(results):
            raise ValueError(f"update got {len(candidates)} candidates but {len(results)} results")
        task = shash2hex(context.mod)
        asts = self._featurize(context, candidates)
        batch = []
        for ast, res in zip(asts, results):
            lat = latency_of(res.run_secs)
            if lat is None:
                self._stats["failed_runs_seen"] += 1
            batch.append((ast, lat, task))
        if not batch:
            return
        # Every model scores the batch once, before anything learns from it: for the fresh-batch error and
        # for the guard. Until the first online step the anchor does not exist: the model is the pretrained one.
        dev_vec = self._device_vec(context)
        trees = self._ckpt.trees_latency_s(asts)  # one tree-head pass for both transformers below
        anchor, emb = self._pretrained_latency(asts, dev_vec, trees)
        vectors = self._vectors(asts, emb) if self.boosted.enabled else None  # the boosted learner's inputs
        fresh = {"anchor": anchor,
                 "online": anchor if self._anchor is None else self._predict_latency(self.model, asts, dev_vec, trees)}
        if vectors is not None and self._learner.has_model(task):
            fresh["boosted"] = np.exp(self._learner.predict(task, vectors, np.log(anchor)))
        self._record_fresh_error(context, task, batch, fresh, dev_vec)
        self._stats["records_seen"] += len(batch)
        if not self.online.enabled:
            return
        self._calibration.add_anchor(batch, anchor)
        keep, labels = self._buffer.labels(batch)
        fresh_labelled = {name: pred[keep] for name, pred in fresh.items()}
        self._guard.track(task, fresh_labelled, labels)
        self._exploration.track(task, fresh_labelled, labels)
        self._buffer.extend(batch)
        self._train_online(dev_vec)
        self._online_calibration_stale = True  # recomputed when predict_latency needs it
        if self.boosted.enabled:
            self._learner.add(task, vectors, np.log(anchor), [lat for _, lat, _ in batch])
            first_fit = not self._learner.has_model(task)
            oof = self._learner.fit(task, cross_validate=first_fit)
            if oof is not None:
                self._guard.enter(task, "boosted", oof)

    def _refresh_online_calibration(self, dev_vec, max_items: int = 512) -> None:
        """The online model changes with every update, so its calibration is recomputed after training, on
        the latest valid measurements (at most ``max_items`` overall, ``calibration_window`` per task)."""
        items = latest_valid_per_task(self._buffer, self.online.calibration_window, max_items)
        if not items:
            return
        self._online_calibration_stale = False
        pred = self._predict_latency(self.model, [ast for _, ast, _ in items], dev_vec)
        self._calibration.set_online([task for task, _, _ in items], [lat for _, _, lat in items], pred)

    def _train_online(self, dev_vec) -> None:
        items = self._buffer.items
        keep, lats = self._buffer.labels(items)
        if len(keep) < 2:
            return
        if self._anchor is None:
            self._anchor = copy.deepcopy(self.model).eval()
        if self._opt is None:
            self._opt = torch.optim.AdamW(self.model.parameters(), lr=self.online.lr, weight_decay=1e-4)
        y_all = torch.tensor(self._ckpt.label_transform.transform(lats), dtype=torch.float32)
        _, gid = np.unique(np.asarray([items[i][2] for i in keep]), return_inverse=True)
        steps, bad_loss = train_online_steps(self.model, self._opt, [items[i][0] for i in keep], y_all,
                                             torch.tensor(gid), dev_vec, self.online, self._rng, self.torch_device)
        self._stats["online_steps"] += steps
        if bad_loss is not None:
            self._stats["online_nonfinite_losses"] += 1
            logger.warning("CDMPPCostModel.update: non-finite online loss (%s); step skipped (fallback #%d)",
                           bad_loss, fallback_count(self._stats))


def _task_name(context) -> str:
    try:
        return str(context.task_name)
    except Exception:  # noqa: BLE001
        return "?"
