"""The conditional flow and the conditional GAN (``conditional=true``): p(x | y) with the labels
as ``context=``, through the trainer, the conformance suite, and behaviour that only a model
reading its labels has (the tests of the conditional VAE are in ``test_context.py``)."""

from __future__ import annotations

import pytest
import torch

import genlab
import genlab.api
from genlab.errors import ConfigError
from genlab.metrics.domain import domain_network
from genlab.samplers import Mask, gaussian_measurement
from tests.conformance import check_generative_model, check_gradients

# a quick conditional flow: MLP conditioners learn the labels of digits fastest (6 s)
FLOW_DIGITS = dict(budget="smoke", conditioner="mlp", hidden=(64,), n_layers=4, steps=300)


@pytest.fixture(scope="module")
def domain_classifier(digits):
    return domain_network(digits, seed=0)  # about 98% accurate on the test digits


def test_conditional_flow_conforms_and_uses_its_labels(digits, tmp_path):
    model = genlab.fit("flow", digits, conditional=True, seed=0, **FLOW_DIGITS)
    assert model.capabilities.context
    assert not genlab.fit("flow", digits, budget="smoke", steps=2).capabilities.context
    check_generative_model(model, digits, tmp_path)
    x, y = digits.x_test, digits.y_test
    with torch.no_grad():
        right = model.log_prob(x, context=y)
        wrong = model.log_prob(x, context=(y + 1) % 10)
        by_class = torch.stack(
            [model.log_prob(x, context=torch.full_like(y, c)) for c in range(10)]
        )
    assert float(right.mean()) > float(wrong.mean()) + 8  # the label carries information
    # Bayes' rule with the exact p(x | y) classifies the test digits (0.92 measured; chance 0.1)
    assert float((by_class.argmax(0) == y).float().mean()) > 0.8
    fresh = genlab.api.build_model("flow", model.config, digits.info)
    fresh.prepare(digits.x_train, context=digits.y_train)
    check_gradients(fresh, digits)


@pytest.mark.parametrize("transform", ["maf", "spline"])
def test_conditional_autoregressive_and_spline_flows_conform(transform, labelled_ring, tmp_path):
    model = genlab.fit(
        "flow", labelled_ring, budget="smoke", transform=transform, conditional=True, seed=0
    )
    check_generative_model(model, labelled_ring, tmp_path)


def test_conditional_flow_completes_and_samples_posteriors_of_the_asked_class(labelled_ring):
    """Given x_1 of a mode on the ring, x_2 has two modes (above and below); the label says which.

    A model that ignored the label in its chains would put about half of the draws of the
    ambiguous classes at the mirror mode.
    """
    model = genlab.fit(
        "flow", labelled_ring, conditional=True, steps=400, hidden=(32, 32), n_layers=4, seed=0
    )
    with torch.no_grad():
        x, y = labelled_ring.x_test, labelled_ring.y_test
        gap = model.log_prob(x, context=y) - model.log_prob(x, context=(y + 4) % 8)
    assert float(gap.min()) > 50  # the opposite mode is many standard deviations away
    check_draws_sit_at_the_asked_mode(model, labelled_ring)


def check_draws_sit_at_the_asked_mode(model, data) -> None:
    """Completions and posterior draws of x_2 given x_1 and the label land at that label's mode."""
    centres = torch.tensor(data.info.mode_centres)
    y = torch.arange(8).repeat(4)
    x, observed = centres[y], torch.tensor([True, False])
    generator = torch.Generator().manual_seed(0)
    completed = model.sample_conditional(x, observed, 10, generator=generator, context=y)
    measurement = gaussian_measurement(Mask(observed), x[:, :1], noise_std=0.1)
    posterior = model.sample_posterior(measurement, 10, generator=generator, context=y, steps=100)
    for draws in (completed, posterior):
        error = (draws[..., 1] - x[:, 1]).abs()  # (10, 32)
        assert float((error < 3 * data.info.mode_std).float().mean()) > 0.8
        assert float((error < 0.5).float().mean()) > 0.95  # never the mirror mode


def test_conditional_gan_conforms(labelled_ring, digits, tmp_path):
    for data in (labelled_ring, digits):
        model = genlab.fit("gan", data, budget="smoke", conditional=True, seed=0)
        check_generative_model(model, data, tmp_path)
        fresh = genlab.api.build_model("gan", model.config, data.info)
        fresh.prepare(data.x_train, context=data.y_train)
        check_gradients(fresh, data)


def test_conditional_gan_puts_each_class_at_its_mode(labelled_ring):
    """A likelihood-free check: a class-conditional GAN trained briefly on the labelled ring
    draws every asked class at that class's mode (chance: 1/8), and its completions and
    posterior draws follow the label."""
    model = genlab.fit("gan", labelled_ring, conditional=True, steps=300, hidden=(64, 64), seed=0)
    centres = torch.tensor(labelled_ring.info.mode_centres)
    y = torch.arange(2000) % 8
    with torch.no_grad():
        x = model.sample(2000, generator=torch.Generator().manual_seed(0), context=y)
    distance = torch.cdist(x, centres)
    assert float((distance.argmin(1) == y).float().mean()) > 0.95  # 1.0 measured
    near = distance.gather(1, y[:, None]).squeeze(1) < 3 * labelled_ring.info.mode_std
    assert float(near.float().mean()) > 0.5  # 0.75 measured
    check_draws_sit_at_the_asked_mode(model, labelled_ring)


def test_conditional_gan_draws_digits_of_the_asked_class(digits, domain_classifier):
    """The issue's measure, at a small budget: the domain classifier assigns the asked class to
    the samples far above chance (0.1): 0.86 measured after 300 steps, 0.98 after 1,000."""
    model = genlab.fit(
        "gan",
        digits,
        conditional=True,
        steps=300,
        architecture="mlp",
        batch_size=128,
        seed=0,
    )
    y = torch.arange(1000) % 10
    with torch.no_grad():
        x = model.sample(1000, generator=torch.Generator().manual_seed(0), context=y)
    accuracy = float((domain_classifier.predict(x) == y).float().mean())
    assert accuracy > 0.6, accuracy


@pytest.mark.parametrize("family", ["flow", "gan"])
def test_conditional_families_need_labels(family, ring):
    with pytest.raises(ConfigError, match="no labels"):
        genlab.fit(family, ring, conditional=True, steps=2)


def test_bigan_refuses_conditional(labelled_ring):
    with pytest.raises(ConfigError, match="bigan: conditional=true is not supported"):
        genlab.fit("bigan", labelled_ring, conditional=True, steps=2)
