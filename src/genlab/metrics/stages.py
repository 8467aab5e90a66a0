"""Where evaluation time goes: wall seconds per named stage, and the stage on a progress bar.

``evaluate`` and ``compare`` wrap each stage (likelihood bound, sample metrics, completions,
pictures...) in :meth:`StageTimer.stage`; the seconds come back as ``stage_seconds`` in their
output, and a progress bar (when one is shown) names the stage that is running, so a user sees
what a long evaluation is doing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from tqdm.auto import tqdm


class StageTimer:
    """Wall seconds of each named stage (a stage entered twice adds up).

    Arguments:
        label: shown before the stage's name on the bar (e.g. the family).
        progress: show a bar on stderr naming the running stage.
    """

    def __init__(self, label: str = "", *, progress: bool = False) -> None:
        self.label = label
        self.seconds: dict[str, float] = {}
        self.bar = (
            tqdm(total=None, desc=label, unit="stage", dynamic_ncols=True, leave=False)
            if progress
            else None
        )

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as ``name``; the bar shows ``label: name`` while it runs."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.label}: {name}" if self.label else name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            if self.bar is not None:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["StageTimer"]
