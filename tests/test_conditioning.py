"""Conditioning from the outside: samples of a class and completions from a measurement,
through the Python API, the command line and the scorecard's measures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import genlab
from genlab.cli import main
from genlab.errors import SamplerWarning
from genlab.metrics.conditioning import (
    bicubic_mse,
    class_route,
    class_scores,
    measurement_scores,
)
from genlab.metrics.domain import domain_network
from genlab.models import MCMCSizes
from genlab.samplers import Downsample


@pytest.fixture(scope="module")
def conditional_vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cvae") / "run"
    genlab.fit("vae", "digits", out=out, budget="smoke", conditional=True, steps=200)
    return out


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    genlab.fit("gan", "digits", out=out, budget="smoke")
    return out


@pytest.fixture(scope="module")
def classifier(digits):
    return domain_network(digits, seed=0)


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_class_routes(conditional_vae_run, gan_run, digits, classifier):
    assert class_route(genlab.load(conditional_vae_run), None) == "context"
    assert class_route(genlab.load(gan_run), classifier) == "guidance"
    assert class_route(genlab.load(gan_run), None) is None
    pca = genlab.fit("pca", digits)
    assert class_route(pca, classifier) is None  # exact posteriors are for linear measurements


def test_a_conditional_model_draws_the_asked_class(conditional_vae_run, digits, classifier):
    model = genlab.load(conditional_vae_run)
    scores = class_scores(model, digits, classifier, per_class=10, seed=0)
    assert scores["class_route"] == "context" and scores["class_samples"] == 100
    assert scores["class_accuracy"] > 0.3  # chance is 0.1, after 200 smoke steps
    assert 0 <= scores["class_cas"] <= 1 and scores["intra_class_fid"] > 0


def test_guidance_lifts_an_unconditional_model_above_chance(gan_run, digits, classifier):
    model = genlab.load(gan_run)
    scores = class_scores(
        model, digits, classifier, per_class=10, seed=0, mcmc=MCMCSizes(steps=100)
    )
    assert scores["class_route"] == "guidance"
    assert scores["class_accuracy"] > 0.3


def test_posterior_spread_shrinks_with_the_noise(digits):
    pca = genlab.fit("pca", digits)
    op = Downsample(digits.info.event_shape, 2)
    wide, narrow = (
        measurement_scores(pca, digits, op, sigma, n_examples=20, n_draws=50)
        for sigma in (2.0, 0.2)
    )
    assert narrow["posterior_spread"] < wide["posterior_spread"]
    bicubic = bicubic_mse(digits, op, 0.2, n_examples=20)
    assert narrow["posterior_mse"] < bicubic  # the model knows what digits look like


def test_api_sample_class_and_complete(conditional_vae_run, gan_run, digits):
    vae = genlab.load(conditional_vae_run)
    x = genlab.sample_class(vae, 3, 5)
    assert x.shape == (5, *digits.info.event_shape)
    with pytest.raises(genlab.ConfigError, match="data="):
        genlab.sample_class(genlab.load(gan_run), 3, 5)
    draws = genlab.complete(genlab.load(gan_run), digits.x_test[:3], "blur:3", 4, steps=20)
    assert draws.shape == (4, 3, *digits.info.event_shape)


def test_cli_sample_a_class(conditional_vae_run, gan_run, tmp_path, capsys):
    for run in (conditional_vae_run, gan_run):
        out = tmp_path / f"{run.parent.name}.npy"
        code, stdout, err = run_cli(
            capsys, "sample", str(run), "--class", "7", "-n", "6", "--out", str(out)
        )
        assert code == 0, err
        assert np.load(out).shape == (6, 1, 8, 8)
    code, _, err = run_cli(
        capsys, "sample", str(gan_run), "--class", "10", "--out", str(tmp_path / "x.npy")
    )
    assert code == 2 and "classes 0..9" in err


def test_cli_complete(gan_run, digits, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, digits.x_test[:3].numpy())
    out = tmp_path / "draws.npy"
    code, _, err = run_cli(
        capsys,
        "complete",
        str(gan_run),
        "--operator",
        "downsample:2",
        "--input",
        str(x),
        "-n",
        "4",
        "--steps",
        "10",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert np.load(out).shape == (4, 3, 1, 8, 8)
    code, _, err = run_cli(
        capsys,
        "complete",
        str(gan_run),
        "--operator",
        "downsample:2",
        "--input",
        str(x),
        "-n",
        "2",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "d.png"),
    )
    assert code == 0 and (tmp_path / "d.png").stat().st_size > 0
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 10)))
    for args, message in [
        (("--operator", "zoom:2", "--input", str(x)), "unknown operator"),
        (("--operator", "downsample:2", "--input", str(bad)), "10 values"),
        (("--operator", "downsample:2", "--input", str(tmp_path / "none.npy")), "no such file"),
    ]:
        code, _, err = run_cli(capsys, "complete", str(gan_run), *args, "--out", str(out))
        assert code == 2 and message in err, err


def test_cli_complete_prints_the_samplers_warnings(gan_run, digits, tmp_path, capsys, monkeypatch):
    """Chains that never moved are one line on the output, not a warning from deep inside."""
    complete = genlab.api.complete

    def stuck(*args, **kwargs):
        warnings.warn("MALA: 3 of 3 chains accepted no move in 5 steps", SamplerWarning, 1)
        return complete(*args, **kwargs)

    monkeypatch.setattr(genlab.api, "complete", stuck)
    x = tmp_path / "x.npy"
    np.save(x, digits.x_test[:1].numpy())
    args = ["--operator", "downsample:2", "--input", str(x), "--steps", "5"]
    code, stdout, err = run_cli(
        capsys, "complete", str(gan_run), *args, "--out", str(tmp_path / "d.npy")
    )
    assert code == 0, err
    assert "warning: draws: MALA: 3 of 3 chains accepted no move in 5 steps" in stdout


def test_cli_complete_refuses_a_family_without_posteriors(digits, tmp_path, capsys):
    run = tmp_path / "ae"
    genlab.fit("ae", digits, out=run, budget="smoke")
    x = tmp_path / "x.npy"
    np.save(x, digits.x_test[:2].numpy())
    code, _, err = run_cli(
        capsys,
        "complete",
        str(run),
        "--operator",
        "blur:3",
        "--input",
        str(x),
        "--out",
        str(tmp_path / "o.npy"),
    )
    assert code == 2 and "sample_posterior" in err


def test_conditional_model_sample_without_class_covers_every_class(
    conditional_vae_run, tmp_path, capsys
):
    out = tmp_path / "all.npy"
    code, _, err = run_cli(
        capsys, "sample", str(conditional_vae_run), "-n", "20", "--out", str(out)
    )
    assert code == 0, err
    assert torch.isfinite(torch.from_numpy(np.load(out))).all()
