"""Shared fixtures: seeded RNG per test, small datasets, a ``--device`` option."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import genlab.data


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device for model tests (cpu or cuda)")


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device")


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global RNG state and leaves it untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture(scope="session")
def digits() -> genlab.data.Dataset:
    return genlab.data.load("digits")


@pytest.fixture(scope="session")
def ring() -> genlab.data.Dataset:
    return genlab.data.load("ring")


@pytest.fixture(scope="session")
def labelled_ring(ring) -> genlab.data.Dataset:
    """The ring with labels: each point's nearest of the 8 modes (a labelled 2-D mixture)."""
    centres = torch.tensor(ring.info.mode_centres)

    def nearest(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, centres).argmin(1)

    info = dataclasses.replace(ring.info, name="labelled ring", n_classes=len(centres))
    return genlab.data.Dataset(
        ring.x_train, ring.x_test, info, nearest(ring.x_train), nearest(ring.x_test)
    )


@pytest.fixture(scope="session")
def first_names() -> genlab.data.Dataset:
    return genlab.data.load("first-names")


@pytest.fixture(scope="session")
def tiny_28() -> genlab.data.Dataset:
    """60 training and 20 test generated 28x28 8-bit images in 10 classes (not MNIST): each
    class a random 0/255 template with a tenth of its pixels flipped."""
    rng = torch.Generator().manual_seed(0)
    templates = (torch.rand(10, 1, 28, 28, generator=rng) < 0.2).float()
    labels = torch.arange(80) % 10
    flips = (torch.rand(80, 1, 28, 28, generator=rng) < 0.1).float()
    x = 255.0 * (templates[labels] - flips).abs()
    info = genlab.data.DataInfo(
        "tiny-28", (1, 28, 28), "image", levels=256, value_range=(0.0, 255.0), n_classes=10
    )
    return genlab.data.Dataset(x[:60], x[60:], info, labels[:60], labels[60:])
