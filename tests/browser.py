"""Load a page in real headless Chromium (Debian's package, installed by `make test`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Chromium is missing: `make test` installs Debian's chromium package"
    return path


def inspect_page(path: Path) -> dict[str, Any]:
    """Console errors, page errors, dialogs, image decoding and the scorecard's rows."""
    found: dict[str, Any] = {"console_errors": [], "page_errors": [], "dialogs": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.on(
            "console",
            lambda m: found["console_errors"].append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: found["page_errors"].append(str(e)))
        page.on("dialog", lambda d: (found["dialogs"].append(d.message), d.dismiss()))
        page.goto(path.resolve().as_uri(), wait_until="load")
        found["images"] = page.evaluate(
            "() => Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0,"
            " alt: i.alt}))"
        )
        found["scorecard_rows"] = page.evaluate(
            "() => Array.from(document.querySelectorAll('#scorecard tbody tr'))"
            ".map(r => r.cells[0].textContent)"
        )
        found["title"] = page.title()
        found["scripts"] = page.evaluate("() => document.scripts.length")
        browser.close()
    return found
