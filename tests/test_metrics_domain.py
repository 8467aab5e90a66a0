"""The domain feature network, Inception Score, CAS, fresh discriminator and run evaluation."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from torchmetrics.image.inception import InceptionScore

from genlab.cli import main
from genlab.errors import ConfigError, DataError
from genlab.metrics.classifier_scores import classification_accuracy_score, fresh_discriminator
from genlab.metrics.domain import (
    ClassifierConfig,
    accuracy,
    confident_fraction,
    domain_network,
    inception_score,
    train_classifier,
)
from genlab.metrics.sample_quality import parse_metrics, to_data_grid

FAST = ClassifierConfig(epochs=8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("domain-cache")


@pytest.fixture(scope="module")
def net(digits, cache):
    return domain_network(digits, cache_dir=cache)  # the default network, as evaluate uses


def test_domain_network_classifies_digits_and_is_cached(digits, net, cache):
    assert accuracy(net, digits.x_test, digits.y_test) > 0.9
    files = list(cache.glob("domain-net-*.safetensors"))
    assert len(files) == 1
    again = domain_network(digits, cache_dir=cache)
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    assert net.features(digits.x_test[:5]).shape == (5, 64)
    with torch.no_grad():  # the softmax from stored features is the network's own
        from_features = net.head_probabilities(net.features(digits.x_test).double())
    torch.testing.assert_close(from_features, net.probabilities(digits.x_test))
    # the key covers the configuration and the seed: a change trains and caches another net
    domain_network(digits, cache_dir=cache, config=ClassifierConfig(epochs=1))
    assert len(list(cache.glob("domain-net-*.safetensors"))) == 2


def test_cache_key_covers_the_data(digits, tmp_path):
    domain_network(digits, cache_dir=tmp_path, config=ClassifierConfig(epochs=1))
    changed = type(digits)(
        digits.x_train.flip(0), digits.x_test, digits.info, digits.y_train.flip(0), digits.y_test
    )
    domain_network(changed, cache_dir=tmp_path, config=ClassifierConfig(epochs=1))
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    for cached in tmp_path.glob("*.safetensors"):
        cached.write_bytes(b"not a safetensors file")
    with pytest.raises(Exception, match="safetensors"):
        domain_network(digits, cache_dir=tmp_path, config=ClassifierConfig(epochs=1))


def test_inception_score_formula_and_torchmetrics():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10, generator=g, dtype=torch.float64) * 3
    score, std = inception_score(logits.softmax(1), n_splits=1)
    with pytest.warns(UserWarning, match="buffer"):
        metric = InceptionScore(feature=torch.nn.Identity(), splits=1)
    metric.update(logits)
    with warnings.catch_warnings():  # torchmetrics' std over a single split warns
        warnings.simplefilter("ignore", UserWarning)
        expected = metric.compute()[0]
    assert score == pytest.approx(float(expected), rel=1e-6) and std == 0.0
    assert inception_score(torch.full((100, 4), 0.25))[0] == pytest.approx(1.0)
    one_hot = torch.eye(4).repeat(25, 1)
    assert inception_score(one_hot, n_splits=5)[0] == pytest.approx(4.0)
    with pytest.raises(DataError):
        inception_score(torch.rand(3, 4), n_splits=10)


def test_cas_and_fresh_discriminator_on_real_and_broken_samples(digits, net):
    g = torch.Generator().manual_seed(0)
    x = digits.x_train[:600]
    cas = classification_accuracy_score(
        x, net.predict(x), digits.x_test, digits.y_test, digits.info, 10, FAST, generator=g
    )
    assert cas > 0.85  # real training images labelled by the domain network
    same = fresh_discriminator(digits.x_train[:400], digits.x_test, digits.info, FAST, generator=g)
    assert 0.35 < same.statistic < 0.65
    noise = to_data_grid(torch.rand(400, 1, 8, 8, generator=g) * 16, digits.info)
    broken = fresh_discriminator(noise, digits.x_test, digits.info, FAST, generator=g)
    assert broken.statistic > 0.95 and broken.reject


def test_classifier_inputs_and_metric_names(digits):
    with pytest.raises(DataError, match="matching"):
        train_classifier(digits.x_train[:5], digits.y_train[:4], digits.info, 10)
    assert parse_metrics("fid, kid") == ["fid", "kid"] and "birthday" in parse_metrics("all")
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_metrics("fid,sharpness")
    grid = to_data_grid(torch.tensor([-0.4, 0.6, 16.7, 7.2]), digits.info)
    assert grid.tolist() == [0.0, 1.0, 16.0, 7.0]


def test_evaluate_run_with_sample_metrics(tmp_path, capsys, cache, net):
    run = str(tmp_path / "pca")
    assert main(["train", "pca", "--out", run, "--set", "latent_dim=8"]) == 0
    code = main(
        [
            "evaluate",
            run,
            "--metrics",
            "fid,fid_inf,kid,prdc,is,confident,memorization,birthday",
            "--n-samples",
            "300",
            "--bootstrap",
            "20",
            "--cache",
            str(cache),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["features"] == "domain"
    assert result["feature_extractor"].startswith("domain network ")
    assert result["n_samples"] == 300 and result["n_real"] == result["n_test"]
    assert result["fid"] > 0 and result["fid_ci_low"] <= result["fid_ci_high"]
    assert math.isfinite(result["fid_inf"]) and result["kid_std"] > 0
    assert 0 <= result["precision"] <= 1 and 0 <= result["coverage"] <= 1
    assert 1 < result["is"] < result["is_real"] <= 10  # PCA samples are less sharp than data
    assert 0 <= result["confident"] < result["confident_real"] <= 1  # and less often confident
    assert 0 <= result["memorization_fraction"] <= 1
    assert result["birthday_threshold"] > 0 and result["birthday_max_batch"] == 300
    assert len(list(cache.glob("*.safetensors"))) >= 1  # reused, not retrained into RUN/cache
    ring_run = str(tmp_path / "ring")
    main(["train", "pca", "--data", "ring", "--out", ring_run])
    capsys.readouterr()
    assert main(["evaluate", ring_run, "--metrics", "is"]) == 2
    assert "labelled" in capsys.readouterr().err
    assert main(["evaluate", ring_run, "--metrics", "fid,prdc", "--json"]) == 0
    ring = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ring["features"] == "pixels" and ring["fid"] >= 0
    assert np.isfinite(ring["precision"])


def test_confident_fraction_counts_rows_with_a_class_at_or_above_the_threshold():
    p = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.02, 0.98]])
    assert confident_fraction(p) == 0.75
    assert confident_fraction(p, threshold=0.96) == 0.25
    with pytest.raises(ConfigError):
        confident_fraction(p, threshold=0.0)
    with pytest.raises(DataError):
        confident_fraction(torch.zeros(0, 2))
