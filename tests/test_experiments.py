"""Each experiment's smoke budget reproduces its claim (asserted on the numbers, not a flag)."""

from __future__ import annotations

import json
import math

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
