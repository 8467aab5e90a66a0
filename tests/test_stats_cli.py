"""``genlab stats distance | prdc | two-sample`` on .npy files, and their input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

from genlab.cli import main
from genlab.metrics.sample_distances import DISTANCE_METRICS


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    arrays = {
        "a": rng.standard_normal((120, 2)),
        "b": rng.standard_normal((100, 2)) + 0.5,
        "a1": rng.standard_normal(80),
        "b1": rng.standard_normal(60) * 2,
        "three": rng.standard_normal((50, 3)),
        "nan": np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]),
        "scalar": np.array(3.0),
        "text": np.array(["a", "b"]),
    }
    for name, array in arrays.items():
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], array)
    return paths


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
def test_every_distance_metric(files, capsys, metric):
    code = main(
        [
            "stats",
            "distance",
            files["a"],
            files["b"],
            "--metric",
            metric,
            "--bootstrap",
            "10",
            "--json",
        ]
    )
    result = last_json(capsys)
    assert code == 0 and result["metric"] == metric and np.isfinite(result["value"])
    if metric in ("knn-kl", "kid"):
        assert "ci_low" not in result
    else:
        assert 0 <= result["ci_low"] <= result["ci_high"]


def test_distance_values_match_references(files, capsys):
    main(["stats", "distance", files["a1"], files["b1"], "--metric", "wasserstein", "--json"])
    expected = scipy.stats.wasserstein_distance(np.load(files["a1"]), np.load(files["b1"]))
    assert last_json(capsys)["value"] == pytest.approx(expected, abs=1e-9)
    main(
        [
            "stats",
            "distance",
            files["a1"],
            files["b1"],
            "--metric",
            "energy",
            "--json",
            "--bootstrap",
            "0",
        ]
    )
    result = last_json(capsys)
    expected = scipy.stats.energy_distance(np.load(files["a1"]), np.load(files["b1"]))
    assert result["value"] == pytest.approx(expected, abs=1e-9) and "ci_low" not in result


def test_prdc_and_two_sample_commands(files, capsys):
    assert main(["stats", "prdc", files["a"], files["b"], "--k", "3", "--json"]) == 0
    assert set(last_json(capsys)) == {"precision", "recall", "density", "coverage"}
    for test in ("mean", "mmd", "energy", "c2st"):
        code = main(
            [
                "stats",
                "two-sample",
                files["a"],
                files["b"],
                "--test",
                test,
                "--alpha",
                "0.05",
                "--permutations",
                "99",
                "--json",
            ]
        )
        result = last_json(capsys)
        assert code == 0 and {"statistic", "p_value", "threshold", "reject"} <= set(result)
        assert result["reject"] == (result["p_value"] <= 0.05)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("a", "three"), "2 coordinates per sample but"),
        (("a", "nan"), "NaN"),
        (("scalar", "a"), "scalar"),
        (("text", "a"), "numeric"),
        (("a", "missing"), "no such file"),
    ],
)
def test_bad_inputs_are_clear_errors(files, capsys, tmp_path, pair, message):
    paths = [files.get(name, str(tmp_path / f"{name}.npy")) for name in pair]
    assert main(["stats", "distance", *paths, "--metric", "mmd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genlab: error:") and message in err and "Traceback" not in err


def test_high_dimensional_histograms_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.standard_normal((30, 5)))
    np.save(tmp_path / "y.npy", rng.standard_normal((30, 5)))
    assert (
        main(
            [
                "stats",
                "distance",
                str(tmp_path / "x.npy"),
                str(tmp_path / "y.npy"),
                "--metric",
                "tv",
            ]
        )
        == 2
    )
    assert "knn-kl" in capsys.readouterr().err
