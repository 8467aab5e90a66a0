"""Mode coverage of the GAN on ``ring`` and ``grid`` over several seeds (the VEEGAN/PacGAN protocol).

Trains ``genlab``'s GAN with its documented default settings (plus any ``--set``), and the
minimax and Wasserstein (weight clipping) variants for comparison, on each dataset and seed,
then reports ``modes_captured``, ``hq_fraction`` and ``mode_kl`` of 2,500 samples
(:func:`genlab.evaluate`) and the training time of each run: wall-clock, and the process's CPU
time (which is what the run costs on an idle core when it uses one thread). Runs go to ``--out``
(one run directory each, with samples and training curves) and the table to
``--out/results.md``; each finished run is appended to ``--out/results.jsonl``, and a rerun
skips the runs already there (so an interrupted sweep continues where it stopped).

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
    started, cpu_started = time.perf_counter(), time.process_time()
    model = genlab.fit(
        "gan",
        data,
        seed=job["seed"],
        out=job["out"],
        overwrite=True,
        **job["settings"],
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result = genlab.evaluate(model, data, seed=job["seed"])
    row = {k: job[k] for k in ("data", "variant", "seed", "settings")}
    row.update({k: result[k] for k in ("modes_captured", "n_modes", "hq_fraction", "mode_kl")})
    row["seconds"], row["cpu_seconds"] = seconds, cpu_seconds
    print(json.dumps(row), flush=True)
    return row


def summarise(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one line per (data, variant), statistics over seeds."""
    lines = [
        "| data | variant | seeds | all modes | modes captured (min) | hq fraction, mean ± sd "
        "(min) | mode KL, mean (max) | minutes per run, mean (max) | CPU minutes, mean (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["data"], row["variant"]), []).append(row)
    for (data, variant), group in groups.items():
        modes = [r["modes_captured"] for r in group]
        hq = [r["hq_fraction"] for r in group]
        kl = [r["mode_kl"] for r in group]
        minutes = [r["seconds"] / 60 for r in group]
        cpu = [r["cpu_seconds"] / 60 for r in group]
        full = sum(m == group[0]["n_modes"] for m in modes)
        sd = statistics.stdev(hq) if len(hq) > 1 else 0.0
        kl_text = (
            f"{statistics.fmean(kl):.4f} ({max(kl):.4f})"
            if all(math.isfinite(v) for v in kl)
            else "inf (no high-quality sample in some run)"
        )
        lines.append(
            f"| {data} | {variant} | {len(group)} | {full}/{len(group)} | "
            f"{statistics.fmean(modes):.1f} ({min(modes)}) | "
            f"{statistics.fmean(hq):.4f} ± {sd:.4f} ({min(hq):.4f}) | {kl_text} | "
            f"{statistics.fmean(minutes):.1f} ({max(minutes):.1f}) | "
            f"{statistics.fmean(cpu):.1f} ({max(cpu):.1f}) |"
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
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"  # one line per finished run; reruns skip those already there
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
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
    key = ("data", "variant", "seed", "settings")
    jobs = [j for j in jobs if not any(all(r[k] == j[k] for k in key) for r in done)]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    wanted = [r for r in rows if r["variant"] in args.variants and r["data"] in args.data]
    table = summarise(sorted(wanted, key=lambda r: (r["variant"], r["data"], r["seed"])))
    print(table)
    (out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
