"""What every experiment returns: the claim, whether it held, the numbers, and a figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from matplotlib.figure import Figure

Budget = Literal["smoke", "full"]
BUDGETS: tuple[str, ...] = get_args(Budget)


@dataclass
class ExperimentResult:
    """Attributes:
    name: the experiment's registry name.
    claim: the statement the experiment tests, in one sentence.
    holds: whether the numbers support the claim (by the criterion in ``criterion``).
    criterion: how ``holds`` was decided, stated with its thresholds.
    numbers: JSON-ready measurements.
    figure: the picture of it.
    """

    name: str
    claim: str
    holds: bool
    criterion: str
    numbers: dict[str, Any]
    figure: Figure = field(repr=False)

    def __post_init__(self) -> None:
        self.holds = bool(self.holds)  # a numpy bool would not serialise to JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "claim": self.claim,
            "holds": self.holds,
            "criterion": self.criterion,
            "numbers": self.numbers,
        }
