"""Search benchmark figures: best latency vs measured trials, per task and for the weighted total (PNG)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..atomic_io import write_figure_atomic
from ..data.layout import file_name_part
from .report import _by, _weighted_best_at, best_at


def plot_curves(report: dict, out: Path) -> list[Path]:
    """One PNG per task and one for the weighted total: best latency vs trials, mean with min-max band over seeds."""
    # Imported here, not at module level, so that importing the package neither loads matplotlib nor
    # switches the process's backend to Agg (pyplot takes its backend at its first import).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = report["config"]
    by = _by(report["runs"])
    grid = np.unique(np.concatenate([[n for n, _ in r["curve"]] for r in report["runs"]] + [[cfg["trials"]]]))
    tasks = report["tasks"]
    weights = {r["task"]: r["weight"] for r in report["runs"]}
    written = []
    for name in tasks + ["__total__"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in cfg["models"]:
            ys = []
            for seed in cfg["seeds"]:
                if name == "__total__":
                    vals = [_weighted_best_at(by, m, weights, seed, n) for n in grid]
                else:
                    r = by.get((m, name, seed))
                    vals = [best_at(r["curve"], n) if r else None for n in grid]
                ys.append([np.nan if v is None else v * 1e3 for v in vals])
            ys = np.asarray(ys, dtype=float)
            if np.all(np.isnan(ys)):
                continue
            mean = np.nanmean(ys, axis=0)
            ax.plot(grid, mean, label=m)
            ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), alpha=0.2)
        ax.set_xlabel("measured trials" + (" per task" if name == "__total__" else ""))
        ax.set_ylabel("weighted latency sum (ms)" if name == "__total__" else "best latency (ms)")
        ax.set_title("all tasks (weighted)" if name == "__total__" else name[:60], fontsize=9)
        ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        path = out / ("search_total.png" if name == "__total__" else f"search_{_safe(name)}.png")
        write_figure_atomic(path, fig, dpi=110)
        written.append(path)
    return written


def _safe(name: str) -> str:
    """A file-name part for a task; long names are cut and get a hash of the whole name, since fused
    tasks often share their first 80 characters (ResNet-18 has two such pairs)."""
    safe = file_name_part(name)
    return safe if len(safe) <= 80 else f"{safe[:71]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
