"""Model evaluation: likelihood, reconstruction, and (later) sample-quality metrics."""

from genlab.metrics.evaluate import evaluate
from genlab.metrics.likelihood import bits_per_dim, log_likelihood

__all__ = ["bits_per_dim", "evaluate", "log_likelihood"]
