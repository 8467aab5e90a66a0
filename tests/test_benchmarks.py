"""The benchmarks stay runnable: those that need no peer run here at their quick size.

A benchmark is a script outside ``make test`` (its timings are read, not asserted); this keeps
one from rotting unseen when an API it calls changes (``bench_autoregressive`` did, for a while,
when ``resolve_settings`` began to return a ``ResolvedSettings``), and checks the counts it
reports that are not timings.
"""

from __future__ import annotations

from benchmarks import bench_autoregressive


def test_the_autoregressive_benchmark_runs_and_counts_one_pixelcnn_pass_a_pixel():
    result = bench_autoregressive.run(quick=True)
    assert result["same_tokens"]  # the KV cache draws the tokens of recomputed prefixes
    assert result["pixelcnn_passes"] == 8 * 8  # the digits' pixels, each pass a whole batch
    assert [row["what"] for row in result["rows"]][-1].startswith("pixelcnn, 16 images")
