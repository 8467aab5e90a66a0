"""genlab: unsupervised learning with generative models, measured honestly.

Every family (PCA, autoencoder, ...) has the same face: ``sample``, ``log_prob``, ``encode``/
``decode`` and ``sample_conditional``, each where the family really can, as its
``capabilities`` declare. Quick start::

    import genlab, torch
    data = genlab.data.load("digits")
    model = genlab.fit("ae", data, latent_dim=8, epochs=50, out="runs/ae")
    x = model.sample(16, generator=torch.Generator().manual_seed(0))
    print(genlab.evaluate(model, data))
    print(genlab.score("samples.npy", "digits").to_json())   # anyone's samples
    same = genlab.load("runs/ae")
"""

__version__ = "0.1.0"

from genlab import data  # noqa: E402
from genlab.api import evaluate, fit, load, resume, score  # noqa: E402
from genlab.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    GenlabError,
    TrainingDiverged,
    UnsupportedCapability,
)
from genlab.models import FAMILIES, Capabilities, GenerativeModel  # noqa: E402

__all__ = [
    "FAMILIES",
    "Capabilities",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GenerativeModel",
    "GenlabError",
    "TrainingDiverged",
    "UnsupportedCapability",
    "__version__",
    "data",
    "evaluate",
    "fit",
    "load",
    "resume",
    "score",
]
