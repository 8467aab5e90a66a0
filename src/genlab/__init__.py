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

import importlib
from typing import Any

from genlab.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    GenlabError,
    RunLocked,
    StorageError,
    TrainingDiverged,
    UnsupportedCapability,
)
from genlab.version import __version__

# The API's names load on first use, so that ``import genlab.stats`` (or any one layer) does not
# import every family, the trainer and the report.
_LAZY = {
    "data": "genlab.data",
    "complete": "genlab.api",
    "evaluate": "genlab.api",
    "fit": "genlab.api",
    "load": "genlab.api",
    "resume": "genlab.api",
    "sample_class": "genlab.api",
    "score": "genlab.api",
    "FAMILIES": "genlab.models",
    "Capabilities": "genlab.models",
    "GenerativeModel": "genlab.models",
}

__all__ = [
    "FAMILIES",
    "Capabilities",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GenerativeModel",
    "GenlabError",
    "RunLocked",
    "StorageError",
    "TrainingDiverged",
    "UnsupportedCapability",
    "__version__",
    "complete",
    "data",
    "evaluate",
    "fit",
    "load",
    "resume",
    "sample_class",
    "score",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'genlab' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if name == "data" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
