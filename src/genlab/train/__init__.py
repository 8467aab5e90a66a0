"""Training: one loop for every family, its configuration, optimizers and checkpoints."""

from genlab.optim import adam
from genlab.train.config import TrainConfig
from genlab.train.loop import TrainState, fit
from genlab.train.optim import Optimizers

__all__ = ["Optimizers", "TrainConfig", "TrainState", "adam", "fit"]
