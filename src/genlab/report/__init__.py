"""Pictures and the HTML report. Sampling returns tensors; writing files happens only here."""

from genlab.report.images import save_image_grid, save_samples, save_scatter
from genlab.report.pairs import save_pairs

__all__ = ["save_image_grid", "save_pairs", "save_samples", "save_scatter"]
