"""Every registered family passes the conformance suite on each kind of data it models (image and
2-D data; text for the sequence families), and refuses the other kinds."""

from __future__ import annotations

import pytest
import torch

import genlab
from genlab.errors import DataError
from genlab.models import FAMILIES
from tests.conformance import check_generative_model, check_gradients

DATASETS = {"image": "digits", "vector": "ring", "text": "first_names"}
CASES = [
    (family, DATASETS[kind])
    for family, cls in sorted(FAMILIES.items())
    for kind in ("image", "vector", "text")
    if kind in cls.data_kinds
]


@pytest.mark.parametrize(("family", "dataset"), CASES)
def test_family_conforms(family, dataset, request, tmp_path, device):
    data = request.getfixturevalue(dataset)
    model = genlab.fit(family, data, budget="smoke", seed=0, device=device)
    check_generative_model(model, data, tmp_path)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_refuses_other_kinds_of_data(family, request):
    cls = FAMILIES[family]
    for kind, dataset in DATASETS.items():
        if kind in cls.data_kinds:
            continue
        info = request.getfixturevalue(dataset).info
        with pytest.raises(DataError, match=f"not {kind} data"):
            genlab.fit(family, request.getfixturevalue(dataset), budget="smoke")
        assert info.kind == kind


GRADIENT_FAMILIES = sorted(f for f, cls in FAMILIES.items() if cls.fit_method == "gradient")


@pytest.mark.parametrize("family", GRADIENT_FAMILIES)
def test_every_parameter_gets_a_gradient(family, request, device):
    data = request.getfixturevalue(DATASETS[FAMILIES[family].data_kinds[0]])
    model_config = genlab.api.resolve_settings(family, {}, "smoke").model
    model = genlab.api.build_model(family, model_config, data.info).to(device)
    model.prepare(data.x_train.to(device))
    check_gradients(model, data)


@pytest.mark.parametrize("family", GRADIENT_FAMILIES)
def test_family_trains_under_bf16_autocast(family, request, tmp_path, device):
    """precision=bf16 (genlab.train.acceleration) trains every family and leaves a model that
    conforms: float32 weights, every task as in float32."""
    data = request.getfixturevalue(DATASETS[FAMILIES[family].data_kinds[0]])
    model = genlab.fit(family, data, budget="smoke", seed=0, device=device, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.is_floating_point())
    check_generative_model(model, data, tmp_path)
