"""Datasets: embedded ones, every file loader on files the tests write, and every bad input."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from PIL import Image

import genlab.data
from genlab.data import dequantize, toy_distribution
from genlab.errors import DataError

# ---------------------------------------------------------------- embedded data


def test_digits_split_is_fixed_stratified_and_complete(digits):
    assert digits.x_train.shape[1:] == (1, 8, 8)
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert digits.info.levels == 17 and digits.info.value_range == (0.0, 16.0)
    assert digits.x_train.min() == 0 and digits.x_train.max() == 16
    train_share = torch.bincount(digits.y_train, minlength=10) / len(digits.y_train)
    test_share = torch.bincount(digits.y_test, minlength=10) / len(digits.y_test)
    assert (train_share - test_share).abs().max() < 0.01  # stratified
    again = genlab.data.load("digits")
    assert torch.equal(again.x_test, digits.x_test)


def test_ring_has_eight_distinct_modes_on_the_unit_circle(ring):
    centres = torch.tensor(ring.info.mode_centres, dtype=torch.float64)
    assert centres.shape == (8, 2)
    assert torch.allclose(centres.norm(dim=1), torch.ones(8, dtype=centres.dtype))
    assert torch.pdist(centres).min() > 0.7  # no repeated centre (the linspace bug)
    assert ring.info.mode_std == 0.01
    nearest = torch.cdist(ring.x_train.double(), centres).argmin(1)
    counts = torch.bincount(nearest, minlength=8).double()
    assert (counts / counts.sum() - 1 / 8).abs().max() < 0.02


def test_grid_modes():
    grid = genlab.data.load("grid")
    centres = torch.tensor(grid.info.mode_centres)
    assert centres.shape == (25, 2) and set(centres.flatten().tolist()) == {-4, -2, 0, 2, 4}
    assert grid.info.mode_std == 0.05


@pytest.mark.parametrize("name", ["ring", "grid", "moons", "spirals", "checkerboard"])
def test_toy_density_integrates_to_one(name):
    """Riemann sum of exp(log p) over a box that holds all the mass."""
    dist = toy_distribution(name)
    samples = dist.sample(4000, torch.Generator().manual_seed(0)).double()
    low, high = samples.min(0).values - 0.5, samples.max(0).values + 0.5
    # spacing below half the narrowest scale (ring: std 0.01; curves: noise >= 0.05)
    spacing = {"ring": 0.004, "checkerboard": 0.01, "spirals": 0.04}.get(name, 0.02)
    xs = [
        torch.arange(float(low[i]), float(high[i]), spacing, dtype=torch.float64) for i in range(2)
    ]
    grid = torch.cartesian_prod(*xs)
    if name == "ring":  # the mass sits within 0.1 of the unit circle
        grid = grid[(grid.norm(dim=1) - 1).abs() < 0.1]
    mass = float(dist.log_prob(grid).exp().sum() * spacing**2)
    assert mass == pytest.approx(1.0, abs=0.01)


def test_toy_log_prob_matches_empirical_histogram():
    """Samples follow the density: probability of a box by counting vs by integrating."""
    dist = toy_distribution("moons")
    x = dist.sample(40_000, torch.Generator().manual_seed(1)).double()
    box = (x[:, 0] > 0.5) & (x[:, 0] < 1.0) & (x[:, 1] > -0.5) & (x[:, 1] < 0.2)
    xs = torch.linspace(0.5, 1.0, 200, dtype=torch.float64)
    ys = torch.linspace(-0.5, 0.2, 280, dtype=torch.float64)
    grid = torch.cartesian_prod(xs, ys)
    integral = float(dist.log_prob(grid).exp().mean() * 0.5 * 0.7)
    assert float(box.double().mean()) == pytest.approx(integral, abs=0.01)


def test_dequantize_stays_in_bins(digits):
    g = torch.Generator().manual_seed(0)
    y = dequantize(digits.x_train, digits.info, g)
    assert ((y - digits.x_train).abs() <= 0.5).all()
    assert abs(float((y - digits.x_train).mean())) < 0.01
    assert not torch.equal(y, digits.x_train)


# ---------------------------------------------------------------- user files


def test_npy_vectors(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    data = genlab.data.load(str(tmp_path / "a.npy"))
    assert data.info.kind == "vector" and data.info.levels is None
    assert len(data.x_train) == 40 and len(data.x_test) == 10
    assert np.allclose(
        np.sort(np.concatenate([data.x_train, data.x_test]), axis=0), np.sort(x, axis=0)
    )


@pytest.mark.parametrize(
    "shape,expected",
    [((20, 5, 6), (1, 5, 6)), ((20, 5, 6, 3), (3, 5, 6)), ((20, 3, 5, 6), (3, 5, 6))],
)
def test_npy_image_layouts(tmp_path, shape, expected):
    x = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.uint8)
    np.save(tmp_path / "img.npy", x)
    data = genlab.data.load(str(tmp_path / "img.npy"))
    assert data.info.event_shape == expected and data.info.kind == "image"
    assert data.info.levels == 256 and data.info.value_range == (0.0, 255.0)


def test_npy_channels_last_values_are_transposed(tmp_path):
    x = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    x = np.concatenate([x] * 5)  # 10 examples
    np.save(tmp_path / "hwc.npy", x)
    data = genlab.data.load(str(tmp_path / "hwc.npy"))
    all_x = torch.cat([data.x_train, data.x_test])
    assert any(
        torch.equal(row, torch.from_numpy(x[0].transpose(2, 0, 1)).float()) for row in all_x
    )


def test_npz_with_given_split_is_used_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(30, 4)), rng.normal(size=(7, 4))
    y_train, y_test = rng.integers(0, 3, 30), rng.integers(0, 3, 7)
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = genlab.data.load(str(tmp_path / "d.npz"))
    assert np.allclose(data.x_train.numpy(), x_train) and np.allclose(data.x_test.numpy(), x_test)
    assert data.y_train.tolist() == y_train.tolist() and data.info.n_classes == 3


def test_npz_x_y_gets_seeded_stratified_split(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 2)), np.repeat([5, 9], 50)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    a = genlab.data.load(str(tmp_path / "d.npz"), seed=0)
    b = genlab.data.load(str(tmp_path / "d.npz"), seed=0)
    c = genlab.data.load(str(tmp_path / "d.npz"), seed=1)
    assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, c.x_test)
    assert a.y_test.tolist().count(0) == 10 and a.y_test.tolist().count(1) == 10


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_with_classes(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(5):
            _write_png(
                tmp_path / "imgs" / cls / f"{i}.png", rng.integers(0, 256, (6, 7), dtype=np.uint8)
            )
    data = genlab.data.load(str(tmp_path / "imgs"))
    assert data.info.event_shape == (1, 6, 7) and data.info.n_classes == 2
    assert data.info.levels == 256
    assert sorted(torch.cat([data.y_train, data.y_test]).tolist()) == [0] * 5 + [1] * 5


def test_image_folder_rgb_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.jpg"
        )
    data = genlab.data.load(str(tmp_path))
    assert data.info.event_shape == (3, 8, 8) and data.y_train is None


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_folder_mnist_layout(tmp_path, compressed):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 5, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 4, dtype=np.uint8),
    }
    for name, array in files.items():
        raw = _idx_bytes(array)
        if compressed:
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (tmp_path / name).write_bytes(raw)
    data = genlab.data.load(str(tmp_path))
    assert data.x_train.shape == (12, 1, 5, 5) and data.x_test.shape == (4, 1, 5, 5)
    assert np.array_equal(data.x_train[:, 0].numpy(), files["train-images-idx3-ubyte"])
    assert data.info.levels == 256 and data.y_test is not None


def test_single_idx_file_with_float_dtype(tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    (tmp_path / "vec.idx").write_bytes(_idx_bytes(x, code=0x0D))
    data = genlab.data.load(str(tmp_path / "vec.idx"))
    assert data.info.kind == "vector" and data.info.levels is None
    assert np.allclose(np.sort(torch.cat([data.x_train, data.x_test]).numpy(), 0), np.sort(x, 0))


# ---------------------------------------------------------------- bad input


def _npy(tmp_path, array, name="bad.npy"):
    path = tmp_path / name
    np.save(path, array, allow_pickle=True)
    return str(path)


BAD_ARRAYS = {
    "nan": (np.array([[0.0, 1.0], [math.nan, 2.0]] * 5), "NaN"),
    "inf": (np.array([[0.0, 1.0], [math.inf, 2.0]] * 5), "infinite"),
    "empty": (np.zeros((0, 3)), "empty"),
    "rank1": (np.zeros(10), "rank 1"),
    "rank5": (np.zeros((4, 2, 2, 2, 2)), "rank 5"),
    "no-channel-axis": (np.zeros((4, 9, 9, 9)), "channel axis"),
    "strings": (np.array([["a", "b"]] * 5), "not numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_npy_raises_specific_error_naming_file(tmp_path, case):
    array, message = BAD_ARRAYS[case]
    path = _npy(tmp_path, array)
    with pytest.raises(DataError, match=message) as info:
        genlab.data.load(path)
    assert "bad.npy" in str(info.value)


def test_ragged_npy_is_refused_without_unpickling(tmp_path):
    path = _npy(tmp_path, np.array([np.zeros(2), np.zeros(3)], dtype=object))
    with pytest.raises(DataError, match="ragged"):
        genlab.data.load(path)


def test_unknown_spec():
    with pytest.raises(DataError, match="unknown dataset 'mnistt'"):
        genlab.data.load("mnistt")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported file type"):
        genlab.data.load(str(tmp_path / "x.csv"))


def test_npz_without_data_key(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 2)))
    with pytest.raises(DataError, match="no data key"):
        genlab.data.load(str(tmp_path / "d.npz"))


def test_npz_mismatched_train_test_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((5, 3)), x_test=np.zeros((2, 4)))
    with pytest.raises(DataError, match="test examples"):
        genlab.data.load(str(tmp_path / "d.npz"))


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 3)), y=np.zeros(4, dtype=int))
    with pytest.raises(DataError, match="5 examples but 4 labels"):
        genlab.data.load(str(tmp_path / "d.npz"))


def test_truncated_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((50, 3)))
    raw = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="d.npz"):
        genlab.data.load(str(tmp_path / "d.npz"))


def test_idx_wrong_magic(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(DataError, match="wrong IDX magic"):
        genlab.data.load(str(tmp_path / "train-images-idx3-ubyte"))


def test_idx_truncated(tmp_path):
    raw = _idx_bytes(np.zeros((10, 4, 4), dtype=np.uint8))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-7])
    with pytest.raises(DataError, match="truncated"):
        genlab.data.load(str(tmp_path / "train-images-idx3-ubyte"))


def test_image_folder_with_non_image_file(tmp_path):
    _write_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt: not an image file"):
        genlab.data.load(str(tmp_path))


def test_unreadable_image(tmp_path):
    _write_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "b.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="b.png: unreadable image"):
        genlab.data.load(str(tmp_path))


def test_image_folder_with_mixed_sizes(tmp_path):
    _write_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    _write_png(tmp_path / "b.png", np.zeros((5, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="differ in size"):
        genlab.data.load(str(tmp_path))


def test_empty_image_folder(tmp_path):
    with pytest.raises(DataError, match="no images"):
        genlab.data.load(str(tmp_path))
