r"""The domain feature network: a small classifier trained on the dataset's own labels.

Inception-v3 features are meaningless on 8x8 digits or 2-D data, and genlab never downloads
weights (a user who has them can pick ``inception_v3:WEIGHTS``,
:mod:`genlab.metrics.feature_spaces`). By default it trains a small classifier on a labelled dataset (a convolutional encoder
for images, an MLP for vectors, inputs standardised by an :class:`~genlab.nn.AffineNormalizer`
fitted on the training split) and uses

- its penultimate layer (``feature_dim`` ReLU units) as the feature space of "domain FID",
  KID and precision/recall: these numbers compare models on the *same* network only and are
  **not comparable** with Inception-based FID;
- its softmax :math:`p(y|x)` for the Inception Score formula (Salimans et al. 2016)

.. math::
    \mathrm{IS} = \exp\Big(\mathbb E_x\,\mathrm{KL}\big(p(y|x)\,\|\,p(y)\big)\Big),
    \qquad p(y) = \mathbb E_x\, p(y|x),

computed on ``n_splits`` disjoint splits (mean and std over splits, as in the paper).
It ranges from 1 (every sample gets the same class distribution) to the number of classes.

The trained network is cached as safetensors under a key hashing everything it depends on:
the training data's bytes, labels, event shape, the :class:`ClassifierConfig`, the seed, this
module's :data:`FEATURE_NET_VERSION` and the torch version.

References:
    Salimans et al., "Improved techniques for training GANs", NeurIPS 2016, arXiv:1606.03498.
    Barratt & Sharma, "A note on the Inception Score", 2018, arXiv:1801.01973.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo, Dataset, tensor_digest
from genlab.data.splits import batch_indices
from genlab.errors import CheckpointError, DataError
from genlab.io import atomic_write_bytes, read_safetensors
from genlab.nn import MLP, AffineNormalizer, ConvEncoder
from genlab.optim import adam
from genlab.stats.seeding import build_seeded

logger = logging.getLogger(__name__)

FEATURE_NET_VERSION = "1"
CACHE_FORMAT = "genlab-domain-net"
CHUNK = 1024


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture and training of the domain classifier.

    Attributes:
        feature_dim: width of the penultimate (feature) layer.
        hidden: MLP hidden sizes (vector data).
        channels: first conv width (image data).
        epochs: passes over the training data.
        max_steps: at most this many steps, whatever the data size (``None``: no cap). The
            default is the number digits' 1,348 training images take at the other defaults
            (20 epochs of 11 batches), so a classifier on any data trains at most as long as
            digits' domain network, and its cost does not grow with the data.
        batch_size: examples per step.
        lr: Adam learning rate.
        weight_decay: L2 penalty.
    """

    feature_dim: int = 64
    hidden: tuple[int, ...] = (128,)
    channels: int = 32
    epochs: int = 20
    max_steps: int | None = 220
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("feature_dim", "channels", "epochs", "batch_size"):
            check(getattr(self, name) >= 1, f"{name} must be positive")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps must be positive")


DEFAULT_CLASSIFIER = ClassifierConfig()


class DomainClassifier(nn.Module):
    """``x (B, *event_shape)`` in data units -> logits ``(B, n_classes)``; :meth:`features`
    gives the penultimate layer ``(B, feature_dim)``."""

    def __init__(self, info: DataInfo, n_classes: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config  # the architecture and training it was built with
        self.normalizer = AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")
        if info.kind == "image" and len(info.event_shape) == 3:
            self.body: nn.Module = ConvEncoder(
                info.event_shape, config.feature_dim, channels=config.channels
            )
        else:
            self.body = MLP(info.n_features, config.feature_dim, config.hidden)
        self.head = nn.Linear(config.feature_dim, n_classes)
        self.flatten = info.kind != "image"

    def features(self, x: Tensor) -> Tensor:
        u = self.normalizer(x)
        if self.flatten:
            u = u.reshape(len(u), -1)
        return torch.relu(self.body(u))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def probabilities(self, x: Tensor, chunk_size: int = CHUNK) -> Tensor:
        """Softmax :math:`p(y|x)` ``(N, n_classes)``, float64 on the CPU, in chunks."""
        self.eval()
        device = next(self.parameters()).device
        return torch.cat(
            [self(c.to(device)).double().softmax(1).cpu() for c in x.split(chunk_size)]
        )

    @torch.no_grad()
    def head_probabilities(self, features: Tensor) -> Tensor:
        """Softmax :math:`p(y|x)` ``(N, n_classes)`` (float64, CPU) from :meth:`features`."""
        weight = self.head.weight
        logits = self.head(features.to(weight.device, weight.dtype))
        return logits.double().softmax(1).cpu()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.probabilities(x).argmax(1)


@torch.enable_grad()  # callers such as evaluate() run under no_grad
def train_classifier(
    x: Tensor,
    y: Tensor,
    info: DataInfo,
    n_classes: int,
    config: ClassifierConfig = DEFAULT_CLASSIFIER,
    *,
    generator: torch.Generator | None = None,
) -> DomainClassifier:
    """Train a :class:`DomainClassifier` on ``(x, y)`` by minibatch Adam on cross-entropy, for
    ``config.epochs`` passes or ``config.max_steps`` steps, whichever comes first.

    ``generator`` (CPU) seeds the initial weights and the batch order.
    """
    if len(x) != len(y) or len(x) < 2:
        raise DataError(f"need matching examples and labels (got {len(x)} and {len(y)})")
    model = build_seeded(lambda: DomainClassifier(info, n_classes, config), generator)
    model = model.to(x.device)
    model.normalizer.fit(x)
    optimizer = adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    steps = 0
    for _ in range(config.epochs):
        for index in batch_indices(len(x), config.batch_size, generator):
            if config.max_steps is not None and steps == config.max_steps:
                return model.eval()
            steps += 1
            index = index.to(x.device)
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def _cache_key(data: Dataset, config: ClassifierConfig, seed: int) -> dict[str, object]:
    return {
        "format": CACHE_FORMAT,
        "version": FEATURE_NET_VERSION,
        "torch": torch.__version__,
        "data_sha256": tensor_digest(data.x_train, data.y_train),
        "event_shape": list(data.info.event_shape),
        "kind": data.info.kind,
        "n_classes": data.info.n_classes,
        "config": dataclasses.asdict(config),
        "seed": seed,
    }


def _key_id(key_text: str) -> str:
    return hashlib.sha256(key_text.encode()).hexdigest()[:16]


def domain_network_id(
    data: Dataset, *, config: ClassifierConfig = DEFAULT_CLASSIFIER, seed: int = 0
) -> str:
    """16 hex digits naming the domain network of ``data`` exactly (the hash of its cache key,
    the name of its cache file): equal ids, equal networks."""
    return _key_id(json.dumps(_cache_key(data, config, seed), sort_keys=True))


def domain_network(
    data: Dataset,
    *,
    config: ClassifierConfig = DEFAULT_CLASSIFIER,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> DomainClassifier:
    """The domain classifier of a labelled dataset, loaded from ``cache_dir`` when cached.

    Trained on ``data.x_train``/``y_train`` only. With ``cache_dir``, the weights go to
    ``cache_dir/domain-net-<key>.safetensors`` (module docstring for the key).
    """
    if data.y_train is None or data.info.n_classes is None:
        raise DataError(f"{data.info.name}: the domain feature network needs labelled data")
    key_text = json.dumps(_cache_key(data, config, seed), sort_keys=True)
    path = (
        None
        if cache_dir is None
        else Path(cache_dir) / f"domain-net-{_key_id(key_text)}.safetensors"
    )
    if path is not None and path.exists():
        tensors, metadata = read_safetensors(path)
        if metadata.get("key") != key_text:
            raise CheckpointError(
                f"{path}: cache key mismatch (a hash collision or an edited file)"
            )
        model = DomainClassifier(data.info, data.info.n_classes, config)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: does not fit the domain network ({exc})") from None
        logger.info("loaded the domain network from %s", path)
        return model.to(data.x_train.device).eval()
    generator = torch.Generator().manual_seed(seed)
    model = train_classifier(
        data.x_train, data.y_train, data.info, data.info.n_classes, config, generator=generator
    )
    if path is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(path, save_safetensors_bytes(state, metadata={"key": key_text}))
        logger.info("cached the domain network in %s", path)
    return model


def accuracy(classifier: DomainClassifier, x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` whose predicted class is ``y``."""
    return float((classifier.predict(x) == y.cpu()).double().mean())


def confident_fraction(probabilities: Tensor, threshold: float = 0.9) -> float:
    r"""Fraction of rows the classifier assigns to one class with probability at least
    ``threshold``: :math:`\frac1N \sum_i \mathbb 1[\max_c p(c \mid x_i) \ge t]`.

    On samples, the share that look like some class to a classifier of the real data (compare
    with the real test images' own fraction).
    """
    check(0.0 < threshold <= 1.0, f"threshold must be in (0, 1], got {threshold}")
    if probabilities.dim() != 2 or len(probabilities) == 0:
        raise DataError(f"need (N >= 1, K) probabilities, got {tuple(probabilities.shape)}")
    return float((probabilities.max(1).values >= threshold).double().mean())


def inception_score(probabilities: Tensor, *, n_splits: int = 10) -> tuple[float, float]:
    r"""Mean and std over ``n_splits`` splits of :math:`\exp(\mathbb E\,\mathrm{KL}(p(y|x)\|p(y)))`.

    Arguments:
        probabilities: ``(N, K)`` rows of :math:`p(y|x)` (each summing to one).
        n_splits: consecutive splits of (nearly) equal size.
    """
    check(n_splits >= 1, f"n_splits must be positive, got {n_splits}")
    p = probabilities.double()
    if p.dim() != 2 or len(p) < n_splits:
        raise DataError(f"need (N >= {n_splits}, K) probabilities, got {tuple(p.shape)}")
    scores = []
    for part in p.tensor_split(n_splits):
        marginal = part.mean(0, keepdim=True)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    array = np.asarray(scores)
    return float(array.mean()), float(array.std()) if len(array) > 1 else 0.0
