"""Losses as plain functions of tensors and distributions, each with its formula."""

from genlab.objectives.reconstruction import mean_squared_error

__all__ = ["mean_squared_error"]
