"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 17 grey levels 0..16)."""

from __future__ import annotations

import numpy as np


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images ``(1797, 1, 8, 8)`` with integer values 0..16 and labels ``(1797,)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.reshape(-1, 1, 8, 8), bunch.target
