"""Data is loaded as it is (depth, alpha, byte order, every image), and valid but unusual data
trains and evaluates end to end with every family, or is refused before training (issue 14,
classes 5 and 6)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.errors import ConfigError, GenlabError
from genlab.models import FAMILIES
from genlab.report.images import save_samples
from tests.hostile import succeeds

# ---------------------------------------------------------------- class 5: loaded as it is


def test_16_bit_png_keeps_its_65536_levels(tmp_path):
    pixels = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4001) + 7
    for i in range(3):
        Image.fromarray(pixels + i).save(tmp_path / f"{i}.png")
    data = genlab.data.load(str(tmp_path))
    assert data.info.levels == 65536 and data.info.value_range == (0.0, 65535.0)
    x = torch.cat([data.x_train, data.x_test])
    assert float(x.max()) == float(pixels.max() + 2) > 255  # not cut to 8 bits
    assert sorted(x[:, 0, 0, 1].tolist()) == [4008.0, 4009.0, 4010.0]


def test_alpha_is_kept_and_images_without_it_get_an_opaque_one(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 100
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4, 3), 50, dtype=np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.full((4, 4), 9, dtype=np.uint8)).save(tmp_path / "c.png")
    data = genlab.data.load(str(tmp_path))
    assert data.info.event_shape == (4, 4, 4)
    x = torch.cat([data.x_train, data.x_test])
    assert sorted(x[:, 3, 0, 0].tolist()) == [100.0, 255.0, 255.0]  # alpha kept / opaque
    assert sorted(x[:, 0, 0, 0].tolist()) == [0.0, 9.0, 50.0]


def test_grey_with_alpha_stays_two_channels(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((4, 4, 2), 60 + i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    assert genlab.data.load(str(tmp_path)).info.event_shape == (2, 4, 4)


def test_palette_image_with_transparency_keeps_it(tmp_path):
    image = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4)).convert("P")
    image.info["transparency"] = 0
    for i in range(5):
        image.save(tmp_path / f"{i}.png", transparency=0)
    data = genlab.data.load(str(tmp_path))
    assert data.info.event_shape[0] == 4
    x = torch.cat([data.x_train, data.x_test])
    assert float(x[:, 3].min()) == 0.0  # the transparent entry


@pytest.mark.parametrize("dtype", [">f8", ">i2", "<u2", ">f4", "<f2", "|u1"])
def test_npy_of_any_byte_order_and_width_loads(tmp_path, dtype):
    values = np.arange(40).reshape(10, 4) % 7
    np.save(tmp_path / "d.npy", values.astype(dtype))
    data = genlab.data.load(str(tmp_path / "d.npy"))
    assert sorted(torch.cat([data.x_train, data.x_test]).flatten().tolist()) == sorted(
        values.flatten().astype(float).tolist()
    )


def test_fortran_order_npy_loads_as_written(tmp_path):
    values = np.asfortranarray(np.arange(40.0).reshape(10, 4))
    np.save(tmp_path / "d.npy", values)
    x = genlab.data.load(str(tmp_path / "d.npy")).x_train
    assert all(row.tolist() in values.tolist() for row in x)


def test_symlink_inside_an_image_folder_is_read(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(np.full((4, 4), 3, dtype=np.uint8)).save(tmp_path / label / "1.png")
    (tmp_path / "b" / "2.png").symlink_to(tmp_path / "a" / "1.png")
    data = genlab.data.load(str(tmp_path))
    assert len(data.x_train) + len(data.x_test) == 3


def test_a_relative_data_path_is_recorded_absolute(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "d.npy", np.random.default_rng(0).normal(size=(50, 3)))
    monkeypatch.chdir(tmp_path)
    succeeds(["train", "pca", "--data", "d.npy", "--out", "run"], capsys)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out, _ = succeeds(["evaluate", str(tmp_path / "run")], capsys)
    assert "nll_nats" in out
    config = (tmp_path / "run" / "config.json").read_text()
    assert f'"spec": "{tmp_path / "d.npy"}"' in config


# ---------------------------------------------------------------- class 6: unusual, valid data


def _unusual(name: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "one-feature": {"x": rng.normal(size=(80, 1))},
        "single-class": {
            "x": rng.normal(size=(80, 1, 4, 4)).astype(np.float32),
            "y": np.zeros(80, dtype=np.int64),
        },
        "constant-columns": {"x": np.concatenate([rng.normal(size=(80, 2)), np.ones((80, 2))], 1)},
        "all-constant": {"x": np.full((80, 3), 4.0)},
        "int64-wide-range": {"x": rng.integers(-(2**24), 2**24, size=(80, 3))},
        "near-the-limit": {"x": rng.normal(size=(80, 3)) * 1e29},
        "tiny-values": {"x": rng.normal(size=(80, 3)) * 1e-30},
        "fewer-rows-than-latent": {"x": rng.normal(size=(6, 3))},
    }[name]


@pytest.mark.parametrize(
    "name",
    [
        "one-feature", "single-class", "constant-columns", "all-constant", "int64-wide-range",
        "near-the-limit", "tiny-values", "fewer-rows-than-latent",
    ],
)  # fmt: skip
def test_unusual_data_trains_and_evaluates_with_every_family(name, tmp_path):
    """Each family trains (a few steps), draws its samples picture and evaluates, or refuses
    before training with a clear error; never an exception after training. (The command line
    runs the same functions; its pictures and files are tested on the names below.)"""
    np.savez(tmp_path / "d.npz", **_unusual(name, np.random.default_rng(0)))
    data = genlab.data.load(str(tmp_path / "d.npz"))
    for family in (f for f, cls in FAMILIES.items() if data.info.kind in cls.data_kinds):
        steps = {"steps": 3} if FAMILIES[family].fit_method == "gradient" else {}
        with warnings.catch_warnings():  # e.g. sklearn: fewer distinct codes than components
            warnings.simplefilter("ignore")
            try:
                model = genlab.fit(family, data, budget="smoke", **steps)
            except GenlabError as exc:  # refused before training, naming the problem
                assert family == "clip" and "cannot be cut into two parts" in str(exc)
                continue
            result = genlab.evaluate(model, data)
            if model.capabilities.sample:
                samples = model.sample(50, generator=torch.Generator().manual_seed(0))
                save_samples(samples, tmp_path / f"{family}.png", data.info, data.x_test)
        assert result["family"] == family
        assert all(math.isfinite(v) for v in result.values() if isinstance(v, float)) or name in (
            "all-constant",
            "constant-columns",
            "tiny-values",
            "single-class",
        )


@pytest.mark.parametrize("name", ["price$1$.npy", "a_{b}^c.npy", r"back\slash$.npy"])
def test_names_that_matplotlib_reads_as_markup_draw_and_resume(name, tmp_path, capsys):
    """The samples picture's title is the file name: drawn as text, not mathematics."""
    np.save(tmp_path / name, np.random.default_rng(0).normal(size=(60, 2)))
    run = str(tmp_path / "run")
    succeeds(["train", "ae", "--data", str(tmp_path / name), "--out", run, "--steps", "3",
              "--set", "latent_dim=1", "--no-progress"], capsys)  # fmt: skip
    assert (tmp_path / "run" / "samples.png").stat().st_size > 0
    succeeds(["resume", run, "--no-progress"], capsys)


def test_too_many_levels_for_the_default_vae_likelihood_become_gaussian(tmp_path):
    np.save(tmp_path / "deep.npy", (np.arange(40 * 16) * 99).astype(np.uint16).reshape(40, 4, 4))
    model = genlab.fit("vae", str(tmp_path / "deep.npy"), steps=2, hidden=(8,), latent_dim=2)
    assert model.likelihood_name == "gaussian"
    with pytest.raises(ConfigError, match="sums over every level"):
        genlab.fit("vae", str(tmp_path / "deep.npy"), steps=2, likelihood="categorical")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_builds_on_the_meta_device(family, digits, first_names):
    """genlab counts a model's parameters on the meta device before allocating it (the guard
    against absurd sizes), so every family must build there."""
    resolved = genlab.api.resolve_settings(family, {}, "smoke")
    info = digits.info if "image" in FAMILIES[family].data_kinds else first_names.info
    assert 0 <= genlab.api.parameter_count(family, resolved.model, info) < 10**7


def test_an_absurd_model_is_refused_before_anything_is_allocated(digits):
    with pytest.raises(ConfigError, match=r"[\d,]{15} parameters, more than genlab's limit"):
        genlab.fit("ae", digits, hidden=(2_000_000_000,), steps=1)
