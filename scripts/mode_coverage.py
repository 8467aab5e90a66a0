"""Mode coverage of the GAN on ``ring`` and ``grid`` over several seeds (the VEEGAN/PacGAN protocol).

Trains ``genlab``'s GAN with its documented default settings (plus any ``--set``), and the
minimax and Wasserstein (weight clipping) variants for comparison, on each dataset and seed,
then reports ``modes_captured``, ``hq_fraction`` and ``mode_kl`` of 2,500 samples
(:func:`genlab.evaluate`) and the training time of each run. Runs go to ``--out`` (one run
directory each, with samples and training curves) and the table to ``--out/results.md`` and
``results.json``.

Example (the README table)::

    python scripts/mode_coverage.py --data ring grid --seeds 0 1 2 3 4 --jobs 2 --threads 1

``--jobs`` runs that many trainings at once, each with ``--threads`` torch threads: two jobs of
one thread on a 2-core machine give each run one core.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "minimax": {"loss": "minimax"},
    "wasserstein": {"loss": "wasserstein"},
}


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    import genlab

    torch.set_num_threads(job["threads"])
    data = genlab.data.load(job["data"])
    started = time.perf_counter()
    model = genlab.fit(
        "gan",
        data,
        seed=job["seed"],
        out=job["out"],
        overwrite=True,
        **job["settings"],
    )
    seconds = time.perf_counter() - started
    result = genlab.evaluate(model, data, seed=job["seed"])
    row = {k: job[k] for k in ("data", "variant", "seed")}
    row.update({k: result[k] for k in ("modes_captured", "n_modes", "hq_fraction", "mode_kl")})
    row["seconds"] = seconds
    print(json.dumps(row), flush=True)
    return row


def summarise(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| data | variant | seeds | all modes | modes captured | hq fraction | mode KL | "
        "minutes per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["data"], row["variant"]), []).append(row)
    for (data, variant), group in groups.items():

        def stat(key: str, fmt: str, group: list[dict[str, Any]] = group) -> str:
            values = [r[key] for r in group]
            if any(not math.isfinite(v) for v in values):
                return "inf" if key == "mode_kl" else "-"
            mean = statistics.fmean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return (
                f"{mean:{fmt}} ± {spread:{fmt}} (min {min(values):{fmt}})"
                if len(values) > 1
                else f"{mean:{fmt}}"
            )

        n_modes = group[0]["n_modes"]
        full = sum(r["modes_captured"] == n_modes for r in group)
        kl = stat("mode_kl", ".3f").replace("(min", "(max").split(" (")[0]
        kl_max = max(r["mode_kl"] for r in group)
        lines.append(
            f"| {data} | {variant} | {len(group)} | {full}/{len(group)} | "
            f"{stat('modes_captured', '.1f')} | {stat('hq_fraction', '.3f')} | "
            f"{kl} (max {kl_max:.3f}) | {statistics.fmean(r['seconds'] for r in group) / 60:.1f} "
            f"(max {max(r['seconds'] for r in group) / 60:.1f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["ring", "grid"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/mode_coverage")
    args = parser.parse_args()

    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key] = parse_value(value)
    out = Path(args.out)
    jobs = [
        {
            "data": data,
            "variant": variant,
            "seed": seed,
            "settings": {**VARIANTS[variant], **extra},
            "threads": args.threads,
            "out": str(out / f"{data}-{variant}-seed{seed}"),
        }
        for variant in args.variants
        for data in args.data
        for seed in args.seeds
    ]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(run_one, jobs, chunksize=1)
    else:
        rows = [run_one(job) for job in jobs]
    table = summarise(rows)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    (out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
