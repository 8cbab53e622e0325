"""Search benchmark: best latency found vs measured trials for cdmpp, cdmpp-scratch, xgb and random.

The same as ``cdmpp-tvm bench-search`` (see cdmpp_tvm/bench/ for what is measured and how runs
resume). Example, ResNet-18 on this CPU:

    python benchmarks/search.py --workload resnet18 --trials 256 --seeds 0 1 --out benchmarks/results/search-resnet18

Writes results.json, results.csv, summary.md and search_*.png into --out.
"""
import sys

from cdmpp_tvm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench-search", *sys.argv[1:]]))
