"""`genlab compare` at the smoke budget on digits, ring and text: the scorecard, the dashes, the
report."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import genlab
from genlab.cli import main
from genlab.compare import DOMAIN_NETWORKS, SCORE_KEYS, run_differences
from genlab.errors import SamplerWarning
from genlab.io import read_safetensors
from genlab.models import FAMILIES, MCMCSizes
from genlab.runs import RunDirectory
from genlab.samplers import recording_sampler_warnings
from genlab.settings import resolve_settings
from tests.browser import inspect_page


def run_compare(data: str, out, capsys) -> dict:
    return run_compare_models(data, None, out, capsys)


def run_compare_models(data: str, models: str | None, out, capsys) -> dict:
    only = [] if models is None else ["--models", models]
    code = main(
        ["compare", "--data", data, *only, "--budget", "smoke", "--out", str(out), "--json"]
        + ["--no-progress"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {"stdout": captured.out, "payload": json.loads(captured.out.strip().splitlines()[-1])}


def expected_missing(family: str, key: str, image: bool, mixture: bool, text: bool) -> bool:
    """Whether ``key`` must be a dash (None) for ``family`` on this data."""
    caps = FAMILIES[family].capabilities
    if key == "bits_per_dim":
        return not caps.supports("density") or text
    if key in ("nll_per_token", "bits_per_char", "perplexity"):
        return not (caps.supports("density") and text)
    if key == "completion_mse":
        return not caps.supports("conditional") or text
    if key in ("fid", "precision", "recall", "confident"):
        return not (caps.sample and image)
    if key in ("modes_captured", "hq_fraction"):
        return not (caps.sample and mixture)
    if key in ("nll_nats", "log_prob_kind"):
        return not caps.supports("density")
    if key in ("probe_accuracy", "knn_accuracy"):
        return not (caps.encode and image)  # digits is the labelled one
    if key == "completion_accuracy":
        return not (caps.supports("conditional") and image)
    if key == "conditional_kind":
        return not caps.supports("conditional")
    if key in ("class_accuracy", "class_cas"):  # models of p(x) alone: by classifier guidance
        guided = caps.posterior not in ("none", "exact")
        return not (guided and image)
    if key in ("posterior_mse", "posterior_spread"):
        return not (caps.supports("posterior") and image)
    return False


@pytest.mark.parametrize(
    ("data", "kind"), [("digits", "image"), ("ring", "vector"), ("first-names", "text")]
)
def test_scorecard_has_a_value_exactly_where_the_family_can(data, kind, tmp_path, capsys):
    result = run_compare(data, tmp_path, capsys)
    families = result["payload"]["families"]
    assert list(families) == [f for f, cls in FAMILIES.items() if kind in cls.data_kinds]
    image, mixture, text = data == "digits", data == "ring", kind == "text"
    for family, row in families.items():
        for key in SCORE_KEYS:
            missing = expected_missing(family, key, image, mixture, text)
            assert (row[key] is None) == missing, (family, key, row[key])
        assert row["train_seconds"] > 0
        assert row["sampler_warnings"] == [], family  # every MCMC chain moved
    saved = json.loads((tmp_path / "scorecard.json").read_text())
    assert saved["families"] == families
    # the table prints a dash, never a zero, where a family cannot do a task
    table = result["stdout"].split("scorecard:")[0]
    if not text:
        ae_row = next(line for line in table.splitlines() if line.startswith("ae "))
        assert " - " in ae_row

    found = inspect_page(tmp_path / "report.html")
    assert found["console_errors"] == [] and found["page_errors"] == []
    assert found["images"] and all(image["ok"] for image in found["images"])
    floor = ["real training data (floor)"] if image else []  # real examples scored as samples
    assert found["scorecard_rows"] == list(families) + floor
    curves = [picture for picture in found["images"] if picture["alt"] == "training curves"]
    assert len(curves) == sum(FAMILIES[f].fit_method == "gradient" for f in families)

    if image:  # exact Gaussian conditioning beats filling in the mean
        (network,) = tmp_path.glob("domain-net-*.safetensors")  # smoke's narrow domain network
        key = json.loads(read_safetensors(network)[1]["key"])
        assert key["config"]["channels"] == DOMAIN_NETWORKS["smoke"].channels == 16
        # what each run's "auto" settings became is in its section (the flow's conditioner...)
        page = (tmp_path / "report.html").read_text()
        decided = genlab.load(tmp_path / "flow").decisions_text()
        assert "conditioner=conv" in decided and f"decided by the data: {decided}" in page
        # the floor: as many real training digits as samples score below every family's FID
        real = saved["baselines"]["real training data"]
        assert set(real) == {"fid", "precision", "recall", "confident"}
        assert real["fid"] < min(row["fid"] for row in families.values() if row["fid"] is not None)
        assert real["confident"] > 0.5
        assert any(line.startswith(floor[0]) for line in table.splitlines())
        baseline = saved["baselines"]["mean_fill"]
        pca = families["pca"]
        assert pca["completion_accuracy"] > baseline["completion_accuracy"]
        assert pca["completion_mse"] < 2 * baseline["completion_mse"]
    if text:  # samples and completions of prefixes, as text, in every family's section
        page = (tmp_path / "report.html").read_text()
        assert page.count("<pre>") == 2 * len(families) and "completions" in page
        assert "padding never counts" in page


def test_a_second_compare_reuses_the_runs(tmp_path, capsys):
    args = ["compare", "--data", "digits", "--models", "pca,ae", "--budget", "smoke"]
    args += ["--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    model = tmp_path / "ae" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    assert main(args) == 0
    assert model.stat().st_mtime_ns == stamp  # reused, not retrained
    capsys.readouterr()


def test_run_differences_name_each_setting_seed_and_data_that_differ(tmp_path):
    """A saved run is the one asked for exactly when nothing differs; otherwise each differing
    setting, the seed and the data are named, and the ``ignored`` keys are not."""
    data = genlab.data.load("digits")
    genlab.fit("pca", data, budget="smoke", seed=3, out=tmp_path / "run")
    saved = RunDirectory(tmp_path / "run").read_config()
    same = resolve_settings("pca", {}, "smoke", data.info)
    assert run_differences(saved, "pca", same, data, 3) == []
    other = resolve_settings("pca", {"latent_dim": 7}, "smoke", data.info)
    assert run_differences(saved, "pca", other, data, 4) == [
        f"model.latent_dim: {saved.model['latent_dim']!r} in the run, 7 wanted",
        "seed: 3 in the run, 4 wanted",
    ]
    assert run_differences(saved, "pca", other, data, 3, (("latent_dim",), ())) == []
    ring = genlab.data.load("ring")
    assert run_differences(saved, "pca", same, ring, 3) == [
        f"data fingerprint: {saved.data['fingerprint']!r} in the run, "
        f"{ring.fingerprint()!r} wanted"
    ]


def test_several_seeds_report_mean_and_spread(tmp_path, capsys):
    """`--seeds 0,1`: every number is the mean over the seeds with its standard deviation, in
    the JSON (``spread``, ``per_seed``), the table (``mean ± sd``) and the report; each seed's
    runs sit in ``seed-<s>`` and equal a one-seed comparison with that seed."""
    args = ["compare", "--data", "ring", "--models", "pca,ae", "--budget", "smoke", "--seeds"]
    code = main([*args, "0,1", "--out", str(tmp_path / "two"), "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out.strip().splitlines()[-1])
    assert payload["seeds"] == [0, 1]
    ae = payload["families"]["ae"]
    values = ae["per_seed"]["modes_captured"]
    assert len(values) == 2 and ae["modes_captured"] == pytest.approx(sum(values) / 2)
    assert ae["spread"]["train_seconds"] > 0
    assert "±" in captured.out.split("scorecard:")[0]
    assert "±" in (tmp_path / "two" / "report.html").read_text()
    assert (tmp_path / "two" / "seed-1" / "ae" / "model.safetensors").exists()
    assert main([*args[:-1], "--seed", "1", "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    capsys.readouterr()
    one = json.loads((tmp_path / "one" / "scorecard.json").read_text())["families"]["ae"]
    assert (
        one["modes_captured"] == values[1]
        and one["nll_nats"] == ae["per_seed"].get("nll_nats", [None, one["nll_nats"]])[1]
    )


@pytest.mark.parametrize(
    "mean,spread,text",
    [
        (14.73, 2.13, "14.7 ± 2.1"),
        (0.7281, 0.0123, "0.728 ± 0.012"),
        (164.5, 0.0, "164.5 ± 0"),
        (83.94, 0.47, "83.94 ± 0.47"),
        (1234.5, 210.0, "1234 ± 210"),
        (0.5, None, "0.5"),
    ],
)
def test_mean_and_spread_show_no_more_digits_than_the_spread_supports(mean, spread, text):
    from genlab.report.table import format_mean_spread

    assert format_mean_spread(mean, spread) == text


def test_a_failed_number_shows_as_nan_and_a_task_the_model_cannot_do_as_a_dash():
    """A NaN posterior once showed as a dash, as if diffusion could not do the task."""
    from genlab.report.table import format_mean_spread, format_table

    assert format_mean_spread(float("nan"), None) == "nan"
    table = format_table([{"family": "a", "x": float("nan"), "y": None}], [("x", "x"), ("y", "y")])
    assert table.splitlines()[-1].split() == ["nan", "-"]


def test_the_budget_subsamples_the_splits_and_says_so(digits, monkeypatch):
    """smoke scores a seeded 500 test examples and fits the probes on 1,000 training codes, and
    its note states both sizes; fast probes every training code of digits."""
    import dataclasses

    import genlab
    from genlab.compare import scoring_note, scoring_split
    from genlab.metrics import representation

    big = dataclasses.replace(
        digits,
        x_train=digits.x_train.repeat(2, 1, 1, 1), y_train=digits.y_train.repeat(2),
        x_test=digits.x_test.repeat(2, 1, 1, 1), y_test=digits.y_test.repeat(2),
    )  # fmt: skip
    scored = scoring_split(big, "smoke", seed=0)
    assert len(scored.x_test) == 500
    note = scoring_note(big, scored, "smoke")
    assert "a seeded random 500 of the 898 test examples" in note
    assert "fitted on a seeded 1,000 of the 2,696 training codes" in note
    assert "the domain network 16 channels wide (32 at other budgets)" in note
    assert "training codes" not in (scoring_note(digits, digits, "fast") or "")

    encoded = []
    original = representation.encode_all
    monkeypatch.setattr(
        representation, "encode_all", lambda m, x: encoded.append(len(x)) or original(m, x)
    )
    model = genlab.fit("pca", big, latent_dim=8)
    scores = representation.representation_scores(model, big, seed=0, n_train=1_000)
    assert encoded == [1_000, len(big.x_test)]
    again = representation.representation_scores(model, big, seed=0, n_train=1_000)
    assert again == scores  # the same seeded subsample


def test_the_budgets_mcmc_transitions_reach_only_mcmc_samplers(digits):
    """mcmc_options sizes an MCMC sampler (the VAE's completions and posterior), nothing for
    exact ones (PPCA's Gaussian conditionals), and leaves None to the family's default."""
    import genlab

    vae = genlab.fit("vae", digits, budget="smoke")
    pca = genlab.fit("pca", digits, latent_dim=4)
    assert vae.capabilities.conditional == "mcmc" and pca.capabilities.conditional == "exact"
    five, five_of_eight = MCMCSizes(steps=5), MCMCSizes(steps=5, n_candidates=8)
    assert vae.mcmc_options("conditional", five) == {"steps": 5}
    assert vae.mcmc_options("posterior", five_of_eight) == {"steps": 5, "n_candidates": 8}
    assert pca.mcmc_options("conditional", five) == {} == pca.mcmc_options("posterior", five)
    assert vae.mcmc_options("conditional", MCMCSizes()) == {}
    mask = torch.zeros(digits.info.event_shape, dtype=torch.bool)
    mask[..., :4, :] = True
    draws = vae.sample_conditional(
        digits.x_test[:3], mask, 2, **vae.mcmc_options("conditional", five)
    )
    assert draws.shape == (2, 3, *digits.info.event_shape)
    torch.testing.assert_close(draws[:, :, mask], digits.x_test[:3][:, mask].expand(2, -1, -1))


def test_the_smoke_budgets_mcmc_sizes_reach_every_sampler(tmp_path, capsys, monkeypatch):
    """A smoke scorecard's MCMC samplers (completions, class samples by guidance, the
    super-resolution posterior, the report's completion pictures) each run the budget's 5
    transitions from its 8 SIR candidates; the report shows the class samples and posterior
    draws that were scored, drawing none again."""
    from genlab.models.vae import VAE

    calls = []
    for name in ("sample_conditional", "sample_posterior"):
        method = getattr(VAE, name)

        def recorded(self, *args, _name=name, _method=method, **kwargs):
            calls.append((_name, kwargs.get("steps"), kwargs.get("n_candidates")))
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(VAE, name, recorded)
    run_compare_models("digits", "vae", tmp_path, capsys)
    assert [name for name, *_ in calls].count("sample_conditional") == 2  # scores, pictures
    assert [name for name, *_ in calls].count("sample_posterior") == 2  # classes, measurement
    assert {(steps, n_candidates) for _, steps, n_candidates in calls} == {(5, 8)}
    page = (tmp_path / "report.html").read_text()
    assert "one row per class, guided by the domain classifier" in page
    assert "2 posterior draws and their mean" in page  # smoke scores 2 draws of each example


def test_chains_that_never_moved_are_named_in_the_scorecard(tmp_path, capsys, monkeypatch):
    """Stages whose sampler warns of stuck chains (the completions, the report's pictures): the
    family's row, the command's output and the report name each with the seed and stage."""
    import genlab.compare

    scores, pictures = genlab.compare.completion_scores, genlab.compare.family_pictures
    message = "MALA: 7 of 8 chains accepted no move in 5 steps"

    def stuck_completions(*args, **kwargs):
        warnings.warn(message, SamplerWarning, stacklevel=1)
        warnings.warn(message, SamplerWarning, stacklevel=1)  # the same note once
        return scores(*args, **kwargs)

    def stuck_pictures(*args, **kwargs):
        warnings.warn(message, SamplerWarning, stacklevel=1)
        return pictures(*args, **kwargs)

    monkeypatch.setattr(genlab.compare, "completion_scores", stuck_completions)
    monkeypatch.setattr(genlab.compare, "family_pictures", stuck_pictures)
    result = run_compare_models("digits", "pca", tmp_path, capsys)
    notes = [f"seed 0, completions: {message}", f"seed 0, pictures: {message}"]
    assert result["payload"]["families"]["pca"]["sampler_warnings"] == notes
    page = (tmp_path / "report.html").read_text()
    for note in notes:
        assert f"warning: pca, {note}" in result["stdout"] and note in page


def test_recording_sampler_warnings_lets_other_warnings_through():
    notes: list[str] = []
    with pytest.warns(UserWarning, match="unrelated"):
        with recording_sampler_warnings("posterior", notes):
            warnings.warn("chains stuck", SamplerWarning, stacklevel=1)
            warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert notes == ["posterior: chains stuck"]
