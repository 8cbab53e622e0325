"""``cdmpp-tvm bench-search``: best latency found vs measured trials, for several cost models
(``cdmpp_tvm.bench``; ``benchmarks/search.py`` runs the same command)."""
from __future__ import annotations

from ..bench import MODELS, SearchBenchConfig, run_benchmark, summary_markdown
from ..bench.dlight_reference import dlight_report, measure_dlight_reference
from ..data.collect import is_single_program
from ..errors import UserError
from ..workloads import load_tasks
from .common import TARGET_HELP, cli_target, positive_int


def register(sub) -> None:
    p = sub.add_parser("bench-search", help="best latency vs trials for several cost models (see benchmarks/search.py)")
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p) -> None:
    """Arguments of ``cdmpp-tvm bench-search`` (shared with benchmarks/search.py)."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", action="append",
                     help="operator or network name, or a TVMScript .py file (repeatable)")
    src.add_argument("--suite", help="suite name in configs/workloads or a YAML path")
    p.add_argument("--models", nargs="+", default=["cdmpp", "cdmpp-scratch", "xgb", "random"],
                   help=f"cost models to compare: {' '.join(MODELS)} (the report compares "
                        "cdmpp with each of the others)")
    p.add_argument("--trials", type=positive_int, default=256, help="measured trials per task (default 256)")
    p.add_argument("--budgets", type=positive_int, nargs="+", default=[64, 128, 256],
                   help="trials per task at which the summary compares models")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--trials-per-iter", type=positive_int, default=32)
    p.add_argument("--population-size", type=positive_int, default=512)
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint of the 'cdmpp' model (default: bundled for the target)")
    p.add_argument("--target", default="host", help=TARGET_HELP)
    p.add_argument("--out", required=True, help="results directory (resumed if it exists)")
    p.add_argument("--skip-single-program", action="store_true",
                   help="leave out tasks whose design space is one program (reshape, transpose, ...): every model "
                        "measures the same program there, so they only add measurement noise and time")
    p.add_argument("--dlight-reference", action="store_true",
                   help="CUDA targets: also measure each task scheduled by TVM's rule-based DLight GPU rules (no "
                        "search) with the same builder and runner, and compare the models' best with it "
                        "(dlight_reference.md)")
    p.add_argument("--report-only", action="store_true",
                   help="tune nothing: write the report of the runs already finished in --out (tasks that not "
                        "every model and seed has finished are left out and listed)")


def run(args) -> int:
    target = cli_target(args.target)
    if args.dlight_reference and target.kind.name != "cuda":
        raise UserError(f"--dlight-reference needs a CUDA target (DLight's GPU rules); --target is {target.kind.name}")
    tasks = load_tasks([args.suite] if args.suite else args.workload, target)
    if args.skip_single_program:
        single = {t.name for t in tasks if is_single_program(t, target)}
        if single:
            print(f"Skipping {len(single)} single-program task(s): {', '.join(sorted(single))}", flush=True)
        tasks = [t for t in tasks if t.name not in single]
        if not tasks:
            raise UserError("--skip-single-program left no task to tune: every design space is one program")
    budgets = tuple(b for b in args.budgets if b <= args.trials) or (args.trials,)
    cfg = SearchBenchConfig(models=tuple(args.models), trials=args.trials, trials_per_iter=args.trials_per_iter,
                            population_size=args.population_size, seeds=tuple(args.seeds), checkpoint=args.checkpoint,
                            budgets=budgets)
    runs = len(tasks) * len(cfg.models) * len(cfg.seeds)
    print(f"Search benchmark: {len(tasks)} task(s) x {len(cfg.models)} models x {len(cfg.seeds)} seeds = {runs} runs "
          f"of {cfg.trials} trials on {target} -> {args.out}", flush=True)
    if args.dlight_reference and not args.report_only:
        measure_dlight_reference(tasks, target, args.out)  # first: a minute, and kept if the search is stopped
    report = run_benchmark(tasks, target, cfg, args.out, run_missing=not args.report_only)
    print(summary_markdown(report))
    if args.dlight_reference:
        text = dlight_report(tasks, args.out, report["runs"], cfg.budgets)
        print(text or "No DLight reference measured yet (run without --report-only).")
    return 0
