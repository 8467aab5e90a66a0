"""The HTML report renders in a real browser, and escapes every string it is given."""

from __future__ import annotations

import torch

from genlab.data import DataInfo
from genlab.report.html import Column, Picture, Section, render_report, write_report
from genlab.report.images import image_grid_png
from tests.browser import inspect_page

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_report_renders_and_escapes(tmp_path):
    info = DataInfo(name="t", event_shape=(1, 4, 4), kind="image", value_range=(0.0, 1.0))
    png = image_grid_png(torch.rand(9, 1, 4, 4, generator=torch.Generator().manual_seed(0)), info)
    rows = [{"family": "pca", "nll": 1.5}, {"family": HOSTILE, "nll": None}]
    columns = [Column("family", "family"), Column("nll", "NLL " + HOSTILE, group="density")]
    sections = [
        Section("pca", {"sample": True, "log_prob": False}, [Picture("samples", png)]),
        Section(HOSTILE, {HOSTILE: True}, [Picture(HOSTILE, png)], notes=[HOSTILE]),
    ]
    page = render_report(
        title="genlab " + HOSTILE, subtitle=HOSTILE, rows=rows, columns=columns,
        sections=sections, notes=[HOSTILE],
    )  # fmt: skip
    path = write_report(tmp_path / "report.html", page)
    found = inspect_page(path)
    assert found["console_errors"] == [] and found["page_errors"] == []
    assert found["dialogs"] == []  # no injected script ran
    assert found["scripts"] == 0
    assert len(found["images"]) == 2 and all(image["ok"] for image in found["images"])
    assert found["scorecard_rows"] == ["pca", HOSTILE]  # shown as text
    assert found["title"] == "genlab " + HOSTILE
