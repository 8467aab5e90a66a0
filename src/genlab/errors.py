"""The exceptions genlab raises for bad input. Each message names the thing and the problem.

The command line prints these as one line (``genlab: error: ...``) instead of a traceback;
everything else is a bug and keeps its traceback.
"""


class GenlabError(Exception):
    """Base class of every error genlab raises on purpose."""


class DataError(GenlabError, ValueError):
    """A dataset spec or data file that cannot be used (unknown, unreadable, NaN, wrong shape...)."""


class ConfigError(GenlabError, ValueError):
    """An unknown option, a value of the wrong type, or values that contradict each other."""


class CheckpointError(GenlabError):
    """A checkpoint or run directory that is missing, corrupt, foreign, or from another model."""


class UnsupportedCapability(GenlabError, NotImplementedError):
    """A model was asked for something its family cannot do (see ``model.capabilities``)."""


class TrainingDiverged(GenlabError, FloatingPointError):
    """A loss or parameter became NaN or infinite; the last good checkpoint is kept."""


class StorageError(GenlabError):
    """A file or folder that cannot be read or written: disk full, read-only, not a folder..."""


class RunLocked(GenlabError):
    """A run directory another process is writing (one writer per run directory)."""


class SamplerWarning(UserWarning):
    """An MCMC sampler more than a quarter of whose chains never moved: their draws are their starts."""
