"""``context=``: labelled data reaches a family that models p(x | y), through the trainer and back.

Uses the test family :class:`tests.toy_families.ClassGaussian` (one Gaussian per label): trained
by gradient steps on labelled digits, its means must land on each class's mean, which only
happens if every batch arrives with its own rows' labels.
"""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.errors import ConfigError
from genlab.metrics.likelihood import log_likelihood
from genlab.runs import read_metrics
from tests.conformance import check_generative_model, check_gradients
from tests.toy_families import ClassGaussian, registered


@pytest.fixture
def class_gaussian():
    with registered(ClassGaussian) as cls:
        yield cls


def class_means(x, y, n_classes=10):
    return torch.stack([x[y == c].flatten(1).mean(0) for c in range(n_classes)])


def test_labels_reach_the_model_with_their_rows(class_gaussian, digits):
    model = genlab.fit(
        "class-gaussian", digits, val_fraction=0.0, steps=600, lr=0.1, batch_size=256, seed=0
    )
    assert torch.equal(model.prepared_with, digits.y_train)
    means = class_means(digits.x_train, digits.y_train)
    overall = digits.x_train.flatten(1).mean(0)
    assert float((means - overall).abs().max()) > 8  # the classes really differ
    error = (model.loc.detach() - means).abs()
    assert float(error.max()) < 1.0 and float(error.mean()) < 0.1


def test_validation_and_evaluation_use_the_labels(class_gaussian, digits, tmp_path):
    model = genlab.fit(
        "class-gaussian", digits, steps=300, lr=0.1, seed=0, eval_every=100, out=tmp_path / "run"
    )
    validations = [r for r in read_metrics(tmp_path / "run") if r["split"] == "val"]
    assert len(validations) == 3 and all(math.isfinite(r["loss"]) for r in validations)
    result = genlab.evaluate(model, digits, seed=0)

    def nll(labels):
        generator = torch.Generator().manual_seed(0)
        ll = log_likelihood(model, digits.x_test, digits.info, generator=generator, context=labels)
        return -float(ll.mean())

    shuffled = digits.y_test[torch.randperm(len(digits.y_test))]
    assert result["nll_nats"] == pytest.approx(nll(digits.y_test), rel=1e-9)
    assert nll(shuffled) > result["nll_nats"] + 50  # a wrong label costs a lot


def test_context_family_conforms(class_gaussian, digits, tmp_path):
    model = genlab.fit("class-gaussian", digits, budget="smoke", seed=0)
    check_generative_model(model, digits, tmp_path)
    fresh = genlab.api.build_model("class-gaussian", model.config, digits.info)
    fresh.prepare(digits.x_train, context=digits.y_train)
    check_gradients(fresh, digits)


def test_context_family_refuses_unlabelled_data_before_training(class_gaussian, ring):
    with pytest.raises(ConfigError, match="labels"):
        genlab.fit("class-gaussian", ring, steps=5)


def test_conditional_vae_conforms_and_uses_its_labels(digits, tmp_path):
    model = genlab.fit("vae", digits, budget="smoke", conditional=True, steps=300, seed=0)
    assert (
        model.capabilities.context
        and not genlab.fit("vae", digits, budget="smoke").capabilities.context
    )
    check_generative_model(model, digits, tmp_path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        right = model.log_prob(digits.x_test, context=digits.y_test, k=10, generator=generator)
        wrong = model.log_prob(
            digits.x_test, context=(digits.y_test + 1) % 10, k=10, generator=generator
        )
    assert float(right.mean()) > float(wrong.mean()) + 10  # the label carries information
    fresh = genlab.api.build_model("vae", model.config, digits.info)
    fresh.prepare(digits.x_train, context=digits.y_train)
    check_gradients(fresh, digits)
    # evaluation gives the labels where the model takes them; codes of p(x | y) are not probed
    result = genlab.evaluate(model, digits)
    assert result["nll_nats"] > 0 and result["recon_mse"] > 0 and "probe_accuracy" not in result


def test_conditional_vae_needs_labels(ring):
    with pytest.raises(ConfigError, match="no labels"):
        genlab.fit("vae", ring, conditional=True, steps=2)
