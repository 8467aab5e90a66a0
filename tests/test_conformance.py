"""Every registered family passes the conformance suite on image and 2-D data."""

from __future__ import annotations

import pytest

import genlab
from genlab.models import FAMILIES
from tests.conformance import check_generative_model, check_gradients


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("dataset", ["digits", "ring"])
def test_family_conforms(family, dataset, request, tmp_path, device):
    data = request.getfixturevalue(dataset)
    model = genlab.fit(family, data, budget="smoke", seed=0, device=device)
    check_generative_model(model, data, tmp_path)


GRADIENT_FAMILIES = sorted(f for f, cls in FAMILIES.items() if cls.fit_method == "gradient")


@pytest.mark.parametrize("family", GRADIENT_FAMILIES)
def test_every_parameter_gets_a_gradient(family, digits, device):
    model_config = genlab.api.resolve_settings(family, {}, "smoke").model
    model = genlab.api.build_model(family, model_config, digits.info).to(device)
    model.prepare(digits.x_train.to(device))
    check_gradients(model, digits)
