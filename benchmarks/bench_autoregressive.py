"""Autoregressive sampling: the transformer's key/value cache against recomputing the prefix,
and the PixelCNN's network passes per pixel.

- transformer: 1,000 items (``--quick``: 200) of the embedded census surnames (``names``,
  14 positions) from the family's default network (untrained weights: the cost does not depend
  on them), sampled with the cache (one new token per step) and without it (the whole prefix
  recomputed at every step, ``sample(..., cache=False)``), same generator, so the same tokens
  (checked); best of ``repeats`` interleaved runs. Target (issue 15): at least 5x.
- PixelCNN: passes of the network while sampling 64 images (``--quick``: 16) of the digits'
  shape (8x8): whole-image passes (``forward``) and one-pixel passes (``forward_pixel``, the
  raster sampler's), counted by wrapping both methods of the model's network, per pixel;
  target: at most one per pixel.

Run: ``python -m benchmarks --only autoregressive``.
"""

from __future__ import annotations

from typing import Any

import torch

import genlab
from benchmarks.report import ratio
from benchmarks.timing import best_of
from genlab.api import build_model, resolve_settings

TITLE = "autoregressive sampling: KV cache, PixelCNN passes"


def run(quick: bool = False) -> dict[str, Any]:
    names = genlab.data.load("names")
    n_items = 200 if quick else 1000
    repeats = 2 if quick else 3
    config = resolve_settings("transformer", {}, None, names.info).model
    transformer = build_model("transformer", config, names.info).eval()
    samples = {}

    def draw(cache: bool) -> torch.Tensor:
        with torch.no_grad():
            return transformer.sample(
                n_items, generator=torch.Generator().manual_seed(0), cache=cache
            )

    seconds = {}
    for _ in range(repeats):  # interleaved: both see the same machine load
        for cache in (True, False):
            t, samples[cache] = best_of(lambda cache=cache: draw(cache), 1)
            seconds[cache] = min(seconds.get(cache, float("inf")), t)
    same = bool(torch.equal(samples[True], samples[False]))

    digits = genlab.data.load("digits")
    config = resolve_settings("autoregressive", {}, None, digits.info).model
    pixelcnn = build_model("autoregressive", config, digits.info).eval()
    net = pixelcnn.net
    passes = 0

    def counted(method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal passes
            passes += 1
            return method(*args, **kwargs)

        return call

    net.forward, net.forward_pixel = counted(net.forward), counted(net.forward_pixel)
    n_images = 16 if quick else 64
    pixel_seconds, _ = best_of(
        lambda: pixelcnn.sample(n_images, generator=torch.Generator().manual_seed(0)), 1
    )
    del net.forward, net.forward_pixel  # the class's methods again
    pixels = digits.info.n_features
    rows = [
        {"what": f"transformer, {n_items} items, KV cache", "seconds": seconds[True]},
        {"what": f"transformer, {n_items} items, recomputed prefix", "seconds": seconds[False]},
        {"what": f"pixelcnn, {n_images} images ({pixels} pixels)", "seconds": pixel_seconds},
    ]
    speedup = seconds[False] / seconds[True]
    per_pixel = passes / pixels  # the images of one call share each pass (a batch)
    return {
        "columns": [["what", "sampling"], ["seconds", "seconds"]],
        "rows": rows,
        "notes": [
            f"cached and recomputed sampling gave the same tokens: {same}",
            f"pixelcnn: {passes} network passes for a batch of {n_images} images of {pixels} "
            f"pixels ({per_pixel:.2f} per pixel, each pass for the whole batch)",
        ],
        "ratios": [
            ratio("transformer sampling: recomputed / cached time", speedup, 5.0),
            ratio("pixelcnn: network passes per pixel", per_pixel, 1.0, at_most=True),
        ],
        "threads": torch.get_num_threads(),
        "same_tokens": same,
        "pixelcnn_passes": passes,
    }
