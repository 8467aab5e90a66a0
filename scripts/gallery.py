"""Run every ``genlab experiment`` at ``--budget full`` and write the gallery page ``docs/gallery.md``.

Each experiment runs in its own process (``python -m genlab experiment NAME --budget full
--out docs/gallery``), timed by wall clock and by the child's CPU time (user + system); the
times go to ``docs/gallery/times.json``. The page lists, for each experiment, its claim, the
command, whether the claim held, its key numbers (:data:`KEY_NUMBERS`, read from the JSON the
run wrote) and its figure.

Usage::

    OMP_NUM_THREADS=1 python scripts/gallery.py            # run all, then write the page
    python scripts/gallery.py --no-run                     # only rewrite the page
    OMP_NUM_THREADS=1 python scripts/gallery.py --only cycling pareto
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "gallery"
PAGE = ROOT / "docs" / "gallery.md"
LIMIT_SECONDS = 180

# (label, path of keys into the JSON "numbers") shown for each experiment.
KEY_NUMBERS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "linear-ae-is-pca": [
        ("largest principal angle at the start (deg)", ("largest_angle_start",)),
        ("largest principal angle at the end (deg)", ("largest_angle_final",)),
    ],
    "optimal-discriminator": [
        ("V(D) of the trained discriminator", ("value",)),
        ("2 JS - log 4", ("two_js_minus_log4",)),
        ("weighted mean abs(D - D*)", ("weighted_mean_abs_error",)),
    ],
    "cycling": [
        ("final distance to the equilibrium", ("final_distance",)),
        ("closest approach of the alternating iterates", ("alternating_min_distance",)),
    ],
    "memorization": [
        ("KDE training log-likelihood at the smallest bandwidth", ("kde_train_ll", "0")),
        ("true density's training log-likelihood", ("true_train_ll",)),
        ("KDE test log-likelihood at the smallest bandwidth", ("kde_test_ll", "0")),
        ("true density's test log-likelihood", ("true_test_ll",)),
    ],
    "gaussian-distances": [("log-log slopes", ("slopes",))],
    "two-sample-power": [
        ("sample sizes", ("sizes",)),
        ("rejection rates, one per sample size", ("rejection_rates",)),
    ],
    "pareto": [
        ("betas", ("betas",)),
        ("rate (nats)", ("rate",)),
        ("distortion (nats)", ("distortion",)),
        ("betas off the front", ("off_front_betas",)),
    ],
    "elbo-gap": [
        ("k", ("k",)),
        ("gap to the exact log-likelihood (nats)", ("gaps",)),
    ],
    "vanishing-gradients": [
        ("gradient norm at the start", ("start_grad_norm",)),
        ("gradient norm at the end (median of the last 10%)", ("final_grad_norm",)),
        ("start / end", ("fall_factor",)),
        ("mean discriminator logit on G(z) at the end", ("final_mean_fake_logit",)),
    ],
    "mode-collapse": [
        ("steps per run", ("steps",)),
        ("seeds", ("seeds",)),
        ("means over seeds (data/variant)", ("summary",)),
    ],
    "birthday-paradox": [
        ("training-set size", ("n_train",)),
        ("true support of the replay samplers", ("known_support",)),
        ("estimated support s^2", ("estimated_support",)),
        ("estimate / truth (theory: 2 ln 2 = 1.39)", ("estimate_over_truth",)),
        ("GAN support / training-set size", ("gan_support_over_n_train",)),
        ("GAN training settings", ("gan_settings",)),
    ],
    "perplexity-vs-context": [
        ("uniform NLL (nats/char)", ("uniform_nll",)),
        ("unigram NLL", ("unigram_nll",)),
        ("held-out NLL by context, per model", ("nll_by_context",)),
    ],
    "memorization-beats-truth": [
        ("NLL per character, train and test", ("nll_per_char",)),
        ("test items never seen in training", ("test_items_unseen_in_training",)),
    ],
    "large-discriminator-overfits": [
        ("discriminator parameters", ("parameters",)),
        ("gap = value on the m training points - value on fresh samples", ("gap",)),
    ],
    "small-discriminator-fooled": [
        ("discriminator parameters p (by hidden width)", ("parameters",)),
        ("detection (held-out E_P D - E_G D) by width and support m", ("detection",)),
        ("support m_1/2 beyond which detection stays below 1/2", ("half_point",)),
        ("m_1/2 / p", ("half_point_over_parameters",)),
        ("log-log slope of m_1/2 against p", ("half_point_slope",)),
        ("1-NN classifier two-sample test, by support", ("c2st",)),
        ("birthday estimate s^2 / m (theory 2 ln 2 = 1.39)", ("birthday_over_support",)),
    ],
    "discriminator-sweet-spot": [
        ("generator parameters", ("generator_parameters",)),
        ("discriminator parameters", ("discriminator_parameters",)),
        ("Spearman rank correlation with the exact W1", ("rank_correlation",)),
        ("generators in the family", ("n_members",)),
    ],
    "no-pure-equilibrium": [
        ("pure equilibria of rock-paper-scissors", ("pure_equilibria",)),
        ("game value (linear programming)", ("game_value",)),
        ("period of the alternating best responses", ("alternating_cycle_length",)),
        ("exploitability after the last move", ("final_exploitability",)),
        ("generator parameters", ("generator_parameters",)),
        ("modes captured per seed (of 8)", ("modes_captured",)),
        ("high-quality fraction per seed", ("hq_fraction",)),
    ],
    "pareto-nonconvex": [
        ("FON (non-convex front)", ("fon",)),
        ("SCH (convex front)", ("sch",)),
    ],
    "diffusion-is-a-deep-vae": [
        ("exact -E log p(x) (nats)", ("exact_nll",)),
        ("best Gaussian's -E log p(x)", ("gaussian_fit_nll",)),
        ("diffusion steps T", ("steps",)),
        ("ideal denoiser: bound (nats)", ("ideal_bound",)),
        ("ideal denoiser: gap to -E log p", ("ideal_gap",)),
        ("trained: mean gap on test points", ("trained_gap",)),
        ("paired improvements of the deepest diffusion", ("improvements",)),
    ],
}

# What a reader should know about a run beyond its numbers.
NOTES: dict[str, str] = {
    "mode-collapse": (
        "Shortened budget: 1,000 steps per run (3 variants x 2 datasets x 2 seeds) instead of "
        "the recipe's 20,000, to fit in three minutes. At this budget the default recipe "
        "reaches every mode but its grid samples are still spread between them (low hq "
        "fraction); without R1 and EMA the grid samples line up on a few columns of modes (a "
        "partial collapse); the tiny discriminator collapses to one small region that reaches "
        "a few modes and captures almost none."
    ),
    "birthday-paradox": (
        "The GAN uses MLP networks and 2,000 steps (the convolutional GAN took about 0.3 s a "
        "step here). The closest near-duplicate pairs in the figure are the GAN's; the "
        "replay samplers check the test where the support is known."
    ),
    "vanishing-gradients": (
        "The saturating gradient flickers from step to step (Adam keeps the nearly optimal "
        "discriminator jittering); the bold curves are running medians and the end value is "
        "the median of the last 10% of steps."
    ),
    "small-discriminator-fooled": (
        "m_1/2 grows more slowly than in proportion to p (the log-log slope is below 1): the "
        "larger discriminators, trained for the same 600 steps, reach less of their class's "
        "supremum. The theory's m ~ p log p / eps^2 is an upper bound on the support needed."
    ),
    "pareto-nonconvex": (
        "gap_t is the interval of the Pareto set t where L1'' + lambda L2'' < 0 (theory: "
        "|t| < 1/sqrt 2), supported_t where the front touches its convex hull (theory: "
        "|t| >= 0.958, where lambda(t) = 1); every descent end point is outside the gap."
    ),
    "diffusion-is-a-deep-vae": (
        "The ideal bound is computed by quadrature with the exact posterior moments of the "
        "mixture, so it is the best any diffusion model with Gaussian steps reaches at that T; "
        "T = 1 and T = 2 give the best Gaussian (one Gaussian step from the Gaussian prior). "
        "The family needs T >= 2, so the trained models start at T = 2; each trained gap lies "
        "above the ideal one, as it must in expectation."
    ),
}


def run_one(name: str) -> dict[str, float]:
    """Run experiment ``name`` at the full budget; its wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "genlab", "experiment", name, "--budget", "full"]
    subprocess.run([*command, "--out", str(OUT)], check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)}


def short(value: Any) -> str:
    """Numbers to 4 significant digits, recursively, as compact JSON-like text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(short(v) for v in value) + "]"
    return str(value)


def is_table(value: Any) -> bool:
    """A dict of dicts that share their keys: shown as its own table."""
    if not isinstance(value, dict) or not value:
        return False
    rows = list(value.values())
    return all(isinstance(r, dict) and r.keys() == rows[0].keys() for r in rows)


def table(label: str, value: dict[str, dict[str, Any]]) -> str:
    columns = list(next(iter(value.values())))
    lines = [f"| {label} | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    for key, row in value.items():
        lines.append(f"| {key} | {' | '.join(short(row[c]) for c in columns)} |")
    return "\n".join(lines) + "\n"


def lookup(numbers: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        numbers = numbers[int(key)] if isinstance(numbers, list) else numbers[key]
    return numbers


def section(name: str, result: dict[str, Any], times: dict[str, float] | None) -> str:
    lines = [
        f"## {name}",
        "",
        f"**Claim.** {result['claim']}",
        "",
        f"```bash\ngenlab experiment {name} --budget full --out docs/gallery\n```",
        "",
        f"**Held:** {'yes' if result['holds'] else 'no'} — {result['criterion']}.",
    ]
    if times is not None:
        lines += [
            "",
            f"**Time:** {times['wall_seconds']:.0f} s wall, {times['cpu_seconds']:.0f} s CPU.",
        ]
    if name in NOTES:
        lines += ["", NOTES[name]]
    lines += ["", "| number | value |", "|---|---|"]
    tables = []
    for label, path in KEY_NUMBERS.get(name, []):
        value = lookup(result["numbers"], path)
        if is_table(value):
            lines.append(f"| {label} | see below |")
            tables.append(table(label, value))
        else:
            lines.append(f"| {label} | {short(value)} |")
    lines += ["", *tables, f"![{name}](gallery/{name}.png)", ""]
    return "\n".join(lines)


def write_page(names: list[str], times: dict[str, dict[str, float]], missing: list[str]) -> None:
    """The page for the experiments ``names``, saying which ones have no full run yet."""
    head = [
        "# Gallery: the field's claims, measured",
        "",
        "Every `genlab experiment` at `--budget full`, seed 0, as written by "
        "`OMP_NUM_THREADS=1 python scripts/gallery.py` (figures and JSON in `docs/gallery/`). "
        f"Each full run should take under {LIMIT_SECONDS // 60} minutes on 2 CPU cores; the "
        "times below were measured one run at a time with one torch thread on a shared, loaded "
        "2-core machine (other jobs running), so wall times are noisy upper bounds and CPU "
        "times are closer to the cost on an idle core.",
        "",
        *(
            [f"Not in the gallery yet (no full run written): {', '.join(missing)}.", ""]
            if missing
            else []
        ),
        "| experiment | held | wall s | CPU s |",
        "|---|---|---|---|",
    ]
    results = {n: json.loads((OUT / f"{n}.json").read_text()) for n in names}
    for n in names:
        t = times.get(n, {})
        held = "yes" if results[n]["holds"] else "no"
        head.append(
            f"| [{n}](#{n}) | {held} | {t.get('wall_seconds', '-')} | {t.get('cpu_seconds', '-')} |"
        )
    body = [section(n, results[n], times.get(n)) for n in names]
    PAGE.write_text("\n".join(head) + "\n\n" + "\n".join(body))


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from genlab.experiments import EXPERIMENTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only rewrite the page")
    parser.add_argument("--only", nargs="*", default=None, help="run only these experiments")
    args = parser.parse_args()
    names = list(EXPERIMENTS)
    times_path = OUT / "times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    if not args.no_run:
        for name in args.only or names:
            times[name] = run_one(name)
            print(name, times[name], flush=True)
            times_path.write_text(json.dumps(times, indent=1))
    done = [n for n in names if (OUT / f"{n}.json").exists()]
    write_page(done, times, [n for n in names if n not in done])


if __name__ == "__main__":
    main()
