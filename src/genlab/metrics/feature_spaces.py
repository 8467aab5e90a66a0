"""The feature spaces of the sample-quality card (``--features`` / ``features=``).

==========================  ================================================================
``domain``                  the penultimate layer of the domain network trained on DATA's
                            labels (:mod:`genlab.metrics.domain`); the default for labelled
                            data. Numbers compare models on the same DATA only.
``pixels``                  the flattened data itself, in data units; the default for
                            unlabelled data.
``inception_v3:WEIGHTS``    :class:`~genlab.nn.inception.FIDInceptionV3` with the weights in
                            the file ``WEIGHTS`` (safetensors, or a torch state dict read with
                            ``weights_only=True``): the standard file gives the FID of papers.
                            Images are mapped from DATA's value range to [0, 1], one channel is
                            repeated to three, and the network resizes to 299 itself.
a callable (Python only)    ``(B, *event_shape)`` in data units -> ``(B, n_features)``.
==========================  ================================================================

Each space has a ``name`` and an ``identity`` that names exactly what computed the features
(the domain network's cache key, the weights file's SHA-256): two scores are comparable only
when both agree. Weights are never downloaded and never unpickled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from pickle import UnpicklingError

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from genlab.data.dataset import DataInfo
from genlab.errors import CheckpointError, ConfigError
from genlab.metrics.features import CHUNK, FeatureExtractor
from genlab.nn.inception import FIDInceptionV3

FEATURE_CHOICES = ("domain", "pixels")
FEATURE_NETWORKS: dict[str, Callable[[], nn.Module]] = {"inception_v3": FIDInceptionV3}
NETWORK_BATCH = 32  # images per forward pass of a feature network (bounded memory)


@dataclass(frozen=True)
class FeatureSpace:
    """A named feature extractor; ``extractor=None`` means the flattened data."""

    name: str
    identity: str
    extractor: FeatureExtractor | None = field(default=None, repr=False, compare=False)
    chunk_size: int = CHUNK


def parse_features(spec: str) -> tuple[str, Path | None]:
    """``"domain"``, ``"pixels"`` or ``"NETWORK:WEIGHTS"`` -> (name, weights path or None)."""
    if spec in FEATURE_CHOICES:
        return spec, None
    name, sep, path = spec.partition(":")
    if sep and name in FEATURE_NETWORKS and path:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise ConfigError(f"--features {spec}: no weights file {weights}")
        return name, weights
    networks = ", ".join(f"{n}:WEIGHTS" for n in FEATURE_NETWORKS)
    raise ConfigError(
        f"unknown features {spec!r}; choose {', '.join(FEATURE_CHOICES)} or {networks} "
        "(a safetensors or weights-only torch state dict; genlab downloads nothing)"
    )


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file, or of a torch state dict loaded with
    ``weights_only=True`` (so loading cannot run code)."""
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, EOFError, ValueError, UnpicklingError):
        raise CheckpointError(
            f"{path}: not a readable safetensors file or weights-only torch state dict (a "
            "pickled model is refused: genlab never unpickles; save model.state_dict(), or "
            "the tensors as safetensors)"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: holds no state dict (a mapping of names to tensors)")
    return dict(state)


def load_feature_network(name: str, path: Path) -> tuple[nn.Module, str]:
    """The network ``name`` with the weights of ``path`` (strict keys and shapes), in eval
    mode, and the file's SHA-256."""
    net = FEATURE_NETWORKS[name]()
    state = read_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = str(exc).split(":", 1)[-1].strip().replace("\n\t", " ")
        raise CheckpointError(f"{path}: does not fit {name} ({detail[:600]})") from None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return net.eval(), digest.hexdigest()


class NetworkFeatures:
    """Images in data units -> features of a network that takes ``(B, 3, H, W)`` in [0, 1]."""

    def __init__(self, net: nn.Module, info: DataInfo) -> None:
        self.net = net
        self.low, self.high = info.value_range

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        device = next(self.net.parameters()).device
        out = []
        for batch in x.split(NETWORK_BATCH):
            u = ((batch.to(device).float() - self.low) / (self.high - self.low)).clamp(0, 1)
            if u.shape[1] == 1:
                u = u.expand(-1, 3, -1, -1)  # grey -> RGB, as PIL's convert("RGB") does
            out.append(self.net(u).cpu())
        return torch.cat(out)


def network_space(name: str, path: Path, info: DataInfo) -> FeatureSpace:
    """The feature space of network ``name`` with the weights in ``path``, for data ``info``."""
    if info.kind != "image" or info.event_shape[0] not in (1, 3):
        raise ConfigError(
            f"--features {name} needs images with 1 or 3 channels; {info.name} holds "
            f"{info.kind}s of shape {info.event_shape}"
        )
    net, sha256 = load_feature_network(name, path)
    return FeatureSpace(
        name, f"{name} weights sha256:{sha256[:16]}", NetworkFeatures(net, info), NETWORK_BATCH
    )


def pixel_space(info: DataInfo) -> FeatureSpace:
    """The flattened data itself."""
    return FeatureSpace("pixels", f"data coordinates ({info.n_features})")


def callable_space(extractor: FeatureExtractor) -> FeatureSpace:
    """A user's extractor, named after its function or class."""
    name = getattr(extractor, "__name__", type(extractor).__name__)
    return FeatureSpace(name, f"user extractor {name}", extractor)
