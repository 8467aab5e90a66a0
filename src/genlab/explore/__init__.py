"""Exploring a trained model: interpolation, attribute vectors, neighbours, completion grids."""

from genlab.explore.attributes import apply_attribute, attribute_vector
from genlab.explore.completion import completion_grid
from genlab.explore.interpolation import interpolate, lerp, slerp
from genlab.explore.neighbours import nearest_neighbours

__all__ = [
    "apply_attribute",
    "attribute_vector",
    "completion_grid",
    "interpolate",
    "lerp",
    "nearest_neighbours",
    "slerp",
]
