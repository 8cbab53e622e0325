"""Search benchmark: best latency found vs measured trials for cdmpp, cdmpp-scratch, xgb and random.

Same as ``cdmpp-tvm bench-search`` (see cdmpp_tvm/search_benchmark.py for what is measured and how
runs resume). Example, ResNet-18 on this CPU:

    python benchmarks/search.py --workload resnet18 --trials 256 --seeds 0 1 --out benchmarks/results/search-resnet18

Writes results.json, results.csv, summary.md and search_*.png into --out.
"""
import argparse
import logging
import sys

from cdmpp_tvm.cli import add_bench_search_arguments, cmd_bench_search

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_bench_search_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    sys.exit(cmd_bench_search(parser.parse_args()))
