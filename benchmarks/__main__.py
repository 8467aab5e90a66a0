"""The benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]``.

Runs every benchmark of :data:`BENCHMARKS` (each against its peers, measured in the same run on
the same data), prints each table and a summary of every ratio against the issues' targets, and
writes ``<out>/<name>.json`` (default ``benchmarks/results/``). ``--quick`` uses small sizes
(about two minutes in all); the full sizes are the ones the issues state. Peers come from the
``bench`` extra (``make bench`` installs it).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from benchmarks.report import RESULTS, show, summary, write_json

BENCHMARKS = (
    "vae",
    "flow",
    "diffusion",
    "denoiser",
    "frechet",
    "prdc",
    "memory",
    "autoregressive",
    "score",
    "threads",
    "compare",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run only this one (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results")
    args = parser.parse_args(argv)
    results = {}
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        started = time.perf_counter()
        result = module.run(quick=args.quick)
        result.update(name=name, title=module.TITLE, quick=args.quick)
        result["wall_seconds"] = time.perf_counter() - started
        show(name, module.TITLE, result)
        print(f"-> {write_json(name, result, args.out)} ({result['wall_seconds']:.0f} s)")
        results[name] = result
    print("\n== every ratio (genlab against its peer, same run)")
    print(summary(results))


if __name__ == "__main__":
    main()
