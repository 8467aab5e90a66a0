"""Each experiment's smoke budget reproduces its claim (asserted on the numbers, not a flag)."""

from __future__ import annotations

import json
import math
import statistics

import pytest

import genlab.experiments as experiments
from genlab.cli import main


def smoke(name: str):
    return experiments.run(name, seed=0, budget="smoke")


def test_cycling():
    result = smoke("cycling")
    final = result.numbers["final_distance"]
    assert final["simultaneous"] > 1e6  # spirals out
    assert result.numbers["alternating_min_distance"] > 0.9  # cycles, never approaches
    assert final["alternating (average)"] < 0.05 < final["alternating"]
    assert final["extragradient"] < 1e-6 and final["optimistic"] < 1e-6
    assert result.holds


def test_linear_ae_is_pca():
    result = smoke("linear-ae-is-pca")
    assert result.numbers["largest_angle_final"] < 5.0
    assert result.numbers["largest_angle_start"] > 45.0
    assert result.holds


def test_optimal_discriminator():
    result = smoke("optimal-discriminator")
    numbers = result.numbers
    assert numbers["value"] == pytest.approx(numbers["two_js_minus_log4"], abs=0.03)
    assert numbers["two_js_minus_log4"] == pytest.approx(2 * numbers["js"] - math.log(4))
    assert 0 < numbers["js"] < math.log(2)
    assert numbers["weighted_mean_abs_error"] < 0.05
    assert result.holds


def test_memorization():
    result = smoke("memorization")
    numbers = result.numbers
    assert numbers["kde_train_ll"][0] > numbers["true_train_ll"] + 5  # far above the truth
    assert numbers["kde_test_ll"][0] < numbers["true_test_ll"]
    # validation picks a bandwidth whose test likelihood is close to (below) the truth's
    assert numbers["test_ll_at_chosen_bandwidth"] < numbers["true_test_ll"]
    assert numbers["test_ll_at_chosen_bandwidth"] > max(numbers["kde_test_ll"]) - 0.05
    assert result.holds


def test_cli_list_and_run(tmp_path, capsys):
    assert main(["experiment", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in experiments.EXPERIMENTS)
    code = main(["experiment", "cycling", "--budget", "smoke", "--out", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out.strip().splitlines()[-1])
    assert payload["holds"] is True and payload["name"] == "cycling"
    assert (tmp_path / "cycling.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "cycling.json").read_text())["numbers"] == payload["numbers"]


def test_unknown_experiment(capsys):
    assert main(["experiment", "nope", "--out", "x"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


def test_gaussian_distances():
    result = smoke("gaussian-distances")
    slopes = result.numbers["slopes"]
    assert slopes["tv_vs_eps"] == pytest.approx(1.0, abs=0.05)
    assert slopes["kl_vs_eps"] == pytest.approx(2.0, abs=0.01)
    assert slopes["narrow_kl_vs_eps"] == pytest.approx(-2.0, abs=0.1)
    assert slopes["samples_vs_inverse_kl"] == pytest.approx(1.0, abs=0.15)
    # simulated sample counts agree with the normal-theory value (2 z_0.95 / eps)^2
    for simulated, theory in zip(
        result.numbers["samples_needed"], result.numbers["samples_needed_theory"], strict=True
    ):
        assert simulated == pytest.approx(theory, rel=0.25)
    # TV from the discretised densities equals the closed form 2 Phi(eps/2) - 1
    assert result.numbers["tv"] == pytest.approx(result.numbers["tv_closed_form"], rel=1e-4)
    assert result.holds


def test_two_sample_power():
    result = smoke("two-sample-power")
    rates = result.numbers["rejection_rates"]
    assert max(max(r) for r in rates["null"].values()) <= 0.16  # alpha + 3 s.e. at 40 repetitions
    assert rates["mean only"]["mean"][-1] > 0.8
    assert rates["variance only"]["mean"][-1] <= 0.16  # blind to a change of variance
    assert rates["variance only"]["mmd"][-1] > 0.8
    mmd = rates["mean only"]["mmd"]
    assert all(a <= b for a, b in zip(mmd, mmd[1:], strict=False))
    assert result.holds


def test_pareto():
    result = smoke("pareto")
    rates, distortions = result.numbers["rate"], result.numbers["distortion"]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))  # betas are ascending
    assert all(a < b for a, b in zip(distortions, distortions[1:], strict=False))
    assert result.numbers["off_front_betas"] == []
    assert result.holds


def test_pareto_front_marks_dominated_points():
    import numpy as np

    from genlab.experiments.pareto import pareto_front

    front = pareto_front(np.array([1.0, 2.0, 3.0, 2.5]), np.array([5.0, 3.0, 1.0, 3.5]))
    assert front.tolist() == [True, True, True, False]  # (2.5, 3.5) is beaten by (2, 3)


def test_elbo_gap():
    result = smoke("elbo-gap")
    gaps = result.numbers["gaps"]
    assert all(g >= 0 for g in gaps)  # every bound is below the exact log-likelihood
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False))  # tighter as k grows
    assert gaps[0] > 5 * gaps[-1]
    assert result.holds


def test_vanishing_gradients():
    result = smoke("vanishing-gradients")
    start, final = result.numbers["start_grad_norm"], result.numbers["final_grad_norm"]
    assert start["minimax"] / final["minimax"] >= 100  # the saturating loss stops teaching
    assert start["nonsaturating"] / final["nonsaturating"] < 100
    assert final["nonsaturating"] > start["nonsaturating"]  # it grows instead
    minimum = result.numbers["min_grad_norm"]
    assert minimum["wasserstein-gp"] > start["wasserstein-gp"] / 10  # bounded away from 0
    assert final["wasserstein-gp"] > 1e3 * final["minimax"]
    assert result.numbers["final_mean_fake_logit"] < -5  # the discriminator is confident
    assert result.holds


def test_birthday_paradox():
    result = smoke("birthday-paradox")
    numbers = result.numbers
    for name, size in numbers["known_support"].items():
        estimate = numbers["estimated_support"][name]
        assert size / 2 <= estimate <= 2 * size, name  # the test recovers a known support
        # and s^2 ~ 2 ln 2 K: batches at half-probability are about sqrt(2 ln 2 K)
        assert numbers["batch_size_at_half"][name] == pytest.approx(
            math.sqrt(2 * math.log(2) * size), rel=0.3
        )
    assert numbers["n_train"] == numbers["known_support"]["replay training set"] > 1000
    assert numbers["estimated_support"]["GAN"] is not None  # the 40-step GAN repeats itself
    assert result.holds


def test_mode_collapse():
    result = smoke("mode-collapse")
    runs = {r["variant"]: r for r in result.numbers["runs"]}  # one seed, ring
    default, tiny = runs["default"], runs["tiny discriminator"]
    assert default["modes_captured"] == default["modes_reached"] == default["n_modes"] == 8
    assert tiny["modes_captured"] <= 2 and tiny["modes_reached"] <= 4  # collapsed
    assert tiny["hq_fraction"] < default["hq_fraction"]
    assert result.holds


def test_result_json_accepts_numpy_bools():
    import numpy as np

    from genlab.report.figures import new_figure

    fig, _ = new_figure(1)
    result = experiments.ExperimentResult("x", "c", np.float64(1.0) < 2.0, "k", {}, fig)
    assert json.loads(json.dumps(result.to_json()))["holds"] is True


def test_perplexity_vs_context():
    result = smoke("perplexity-vs-context")
    numbers = result.numbers
    curves = numbers["nll_by_context"]
    assert numbers["uniform_nll"] > numbers["unigram_nll"] > curves["ngram"]["1"]
    for family in ("nplm", "transformer"):
        assert curves[family]["4"] < curves[family]["1"] < numbers["unigram_nll"]
    assert result.holds


def test_memorization_beats_truth():
    result = smoke("memorization-beats-truth")
    scores = result.numbers["nll_per_char"]
    memoriser = scores["memoriser"]
    assert memoriser["train"] < scores["truth"]["train"] - 0.5
    assert all(memoriser["train"] < s["train"] for s in scores.values() if s is not memoriser)
    assert (
        memoriser["test"] == float("inf") and result.numbers["test_items_unseen_in_training"] > 0
    )
    # honest models have finite test NLL, and none is below the truth's by more than noise
    assert all(s["test"] < 10 for name, s in scores.items() if name != "memoriser")
    assert min(s["test"] for s in scores.values()) > scores["truth"]["test"] - 0.05
    assert result.holds


def test_large_discriminator_overfits():
    from genlab.experiments.large_discriminator_overfits import FAR, claim_holds

    result = smoke("large-discriminator-overfits")
    rows = [list(by_m.values()) for by_m in result.numbers["gap"].values()]  # small size first
    small, large = rows[0], rows[-1]
    assert large[0] > FAR  # far from the truth, 0: the generator is perfect
    assert all(a > b for a, b in zip(large, small, strict=True))
    assert all(row[0] > row[-1] for row in rows)  # shrinks as the sample grows
    fresh = [run["fresh"] for by_m in result.numbers["runs"].values() for run in by_m.values()]
    assert max(abs(f) for f in fresh) < 0.05  # fresh samples see no difference
    assert result.holds
    # counter-cases: the same numbers with the sizes swapped, or with the sample sizes reversed
    assert not claim_holds(rows[::-1])
    assert not claim_holds([row[::-1] for row in rows])


def test_small_discriminator_fooled():
    from genlab.experiments.small_discriminator_fooled import CHANCE, claim_holds

    result = smoke("small-discriminator-fooled")
    numbers = result.numbers
    widths = tuple(int(w) for w in numbers["detection"])
    detection = [list(by_m.values()) for by_m in numbers["detection"].values()]
    halves = list(numbers["half_point"].values())
    assert halves[0] < halves[1]  # the larger discriminator needs a larger support to be fooled
    assert detection[0][-1] < CHANCE  # fooled by the largest support ...
    last = str(numbers["supports"][-1])
    assert numbers["c2st"][last]["accuracy"] > 0.6  # ... which the 1-NN test still detects
    rejects = [c["reject"] for c in numbers["c2st"].values()]
    ratios = list(numbers["birthday_over_support"].values())
    assert all(rejects) and all(0.5 <= r <= 3 for r in ratios)  # s^2 ~ 2 ln 2 m
    assert result.holds
    # counter-case: the discriminator sizes swapped
    assert not claim_holds(widths, detection[::-1], halves[::-1], rejects, ratios)


def test_discriminator_sweet_spot():
    from genlab.experiments.discriminator_sweet_spot import claim_holds

    result = smoke("discriminator-sweet-spot")
    numbers = result.numbers
    w1, ipm = numbers["w1"], numbers["ipm"]
    assert numbers["scales"][0] == 0 and w1[0] == min(w1) < 0.2  # the data's own sample: W1 ~ 0
    assert numbers["rank_correlation"]["slightly larger"] >= 0.8
    assert result.holds
    # counter-case: a linear discriminator (it sees only means, which the family shares)
    assert numbers["rank_correlation"]["linear"] < 0.5
    assert not claim_holds(w1, ipm["linear"])


def test_no_pure_equilibrium():
    import numpy as np

    from genlab.experiments.no_pure_equilibrium import (
        ROCK_PAPER_SCISSORS,
        best_response_play,
        game_claim_holds,
        game_value,
        modes_claim_holds,
        pure_equilibria,
    )

    result = smoke("no-pure-equilibrium")
    numbers = result.numbers
    assert numbers["pure_equilibria"] == [] and numbers["game_value"] == pytest.approx(0, abs=1e-9)
    assert numbers["alternating_cycle_length"] == 3  # rock -> paper -> scissors
    assert numbers["final_exploitability"]["alternating"] == 2.0
    assert numbers["final_exploitability"]["mixture"] < 0.05
    single, mixture = numbers["modes_captured"].values()
    assert statistics.fmean(mixture) > statistics.fmean(single)
    assert result.holds
    # counter-cases: one strategy instead of a mixture; one generator instead of a mixture
    pure = best_response_play(ROCK_PAPER_SCISSORS, 200, mixture=False)
    assert not game_claim_holds(ROCK_PAPER_SCISSORS, pure, pure, 0.0)
    assert not modes_claim_holds(single, single)
    # a game with a saddle point has a pure equilibrium, and its value is that entry
    saddle = np.array([[1.0, 2.0], [0.0, -1.0]])
    assert pure_equilibria(saddle) == [(0, 0)] and game_value(saddle) == pytest.approx(1.0)
    mixed = best_response_play(saddle, 200, mixture=True)
    assert not game_claim_holds(saddle, best_response_play(saddle, 200, False), mixed, 1.0)


def test_mixture_generator_interleaves_its_components():
    import torch

    from genlab.experiments.no_pure_equilibrium import MixtureGenerator

    components = [torch.nn.Linear(2, 2) for _ in range(3)]
    z = torch.randn(7, 2)
    x = MixtureGenerator(components)(z)
    for i in range(7):
        assert torch.allclose(x[i], components[i % 3](z[i]))


def test_pareto_nonconvex():
    import torch
    from scipy.optimize import brentq

    from genlab.experiments.pareto_nonconvex import SCH, claim_holds, weight_and_curvature

    result = smoke("pareto-nonconvex")
    fon, sch = result.numbers["fon"], result.numbers["sch"]
    # on FON, lambda(t) = (1 - t)/(1 + t) e^{4t} turns at t = +-1/sqrt 2: the gap is between
    assert fon["gap_t"] == pytest.approx([-(0.5**0.5), 0.5**0.5], abs=2e-3)
    # the convex hull touches the front where lambda(t) = 1 (by symmetry)
    touch = brentq(lambda t: (1 - t) / (1 + t) * math.exp(4 * t) - 1, 0.75, 0.999)
    ends = [t for interval in fon["supported_t"] for t in interval]
    assert ends == pytest.approx([-1, -touch, touch, 1], abs=2e-3)
    assert fon["ends_in_gap"] == 0 and fon["jumps"] > 0 and fon["largest_step"] > 1.4
    assert result.holds
    # counter-case: the convex front of SCH, where lambda(t) = t / (2 - t) reaches every point
    assert sch["unsupported_fraction"] == 0 and sch["gap_t"] is None and sch["jumps"] == 0
    assert result.numbers["sch_holds"] is False
    assert not claim_holds({**fon, "unsupported_fraction": 0.0, "gap_fraction": 0.0})
    t = torch.linspace(0.1, 1.9, 7, dtype=torch.float64)
    weight, curvature = weight_and_curvature(SCH, t)
    assert torch.allclose(weight, t / (2 - t)) and torch.allclose(curvature, 2 + 2 * weight)


def test_supported_points_are_the_lower_convex_hull():
    import numpy as np

    from genlab.experiments.pareto_nonconvex import supported

    l1 = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    l2 = np.array([4.0, 3.5, 2.0, 1.0, 0.0])  # (1, 3.5) bulges out; the rest is one hull edge
    assert supported(l1, l2).tolist() == [True, False, True, True, True]


def test_diffusion_is_a_deep_vae():
    from genlab.experiments.diffusion_is_a_deep_vae import claim_holds

    result = smoke("diffusion-is-a-deep-vae")
    numbers = result.numbers
    bounds, gaps = numbers["ideal_bound"], numbers["ideal_gap"]
    assert numbers["steps"][:2] == [1, 2]
    # one Gaussian step from the Gaussian prior fits at best a Gaussian: T = 1 and 2 give it
    for bound in bounds[:2]:
        assert bound == pytest.approx(numbers["gaussian_fit_nll"], abs=1e-5)
    assert all(a > b > 0 for a, b in zip(gaps[1:], gaps[2:], strict=False))  # tighter past T=2
    assert gaps[-1] < 0.01 < 0.5 < gaps[0]
    trained = {name: gap["mean"] for name, gap in numbers["trained_gap"].items()}
    assert trained["T=100"] < trained["VAE"] < trained["T=2"]
    assert result.holds
    # counter-cases: bounds that grow with T; trained models whose depth does not help
    improvements = {k: (v["mean"], v["se"]) for k, v in numbers["improvements"].items()}
    assert claim_holds(gaps, improvements)
    assert not claim_holds(gaps[::-1], improvements)
    assert not claim_holds(gaps, {k: (-mean, se) for k, (mean, se) in improvements.items()})


def test_ideal_diffusion_bound():
    import torch

    from genlab.experiments.diffusion_is_a_deep_vae import (
        TOLERANCE,
        TWO_GAUSSIANS,
        Mixture,
        entropy,
        expected_bound,
        ideal_process,
        posterior_moments,
        schedule,
        tightens,
    )
    from genlab.samplers.diffusion import variational_bound

    unit = TWO_GAUSSIANS.standardised()
    # the posterior moments against a Riemann sum of p(x) N(x_t; a x, 1 - a^2) over x
    xt, alpha_bar = torch.tensor([[-0.7], [0.1], [1.3]], dtype=torch.float64), 0.6
    grid = torch.linspace(-8, 8, 200_001, dtype=torch.float64)
    weight = unit.log_prob(grid[:, None]).exp() * torch.exp(
        -((xt - alpha_bar**0.5 * grid) ** 2) / (2 * (1 - alpha_bar))
    )
    weight = weight / weight.sum(1, keepdim=True)
    mean = (weight * grid).sum(1, keepdim=True)
    variance = (weight * (grid - mean) ** 2).sum(1, keepdim=True)
    got_mean, got_variance = posterior_moments(unit, xt, torch.full_like(xt, alpha_bar))
    assert torch.allclose(got_mean, mean, atol=1e-8)
    assert torch.allclose(got_variance, variance, atol=1e-8)
    # the quadrature agrees with the family's Monte Carlo estimate, and with more nodes
    x = unit.sample(20_000, torch.Generator().manual_seed(0)).double()
    process = ideal_process(unit, schedule(10))
    estimate = variational_bound(process, x, generator=torch.Generator().manual_seed(1))
    error = float(estimate.std()) / len(estimate) ** 0.5
    quadrature = expected_bound(unit, 10, 40)
    assert float(estimate.mean()) == pytest.approx(quadrature, abs=4 * error)
    assert expected_bound(unit, 10, 80) == pytest.approx(quadrature, abs=TOLERANCE)
    # counter-case: for Gaussian data the moment-matched steps are exact, and depth buys nothing
    gaussian = Mixture.of([1.0], [0.0], [1.0])
    steps = (1, 2, 10, 100)
    gaps = [expected_bound(gaussian, s, 20) - entropy(gaussian, 20) for s in steps]
    assert max(abs(g) for g in gaps) < TOLERANCE / 10
    assert not tightens(gaps)
