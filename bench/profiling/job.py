"""One cell run under a profiler: the same cell machinery as a timed run, files in their own folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsload.bench.cells import Cell, CellOutcome
from ttsload.bench.harness import runner
from ttsload.strategies.registry import StrategySpec


@dataclass
class ProfilePass:
    """A cell, the folder its profiles go to, and the options of the cell it profiles."""

    cell: Cell
    out: Path  # the results folder: file paths in records are relative to it
    folder: Path
    options: runner.CellOptions
    spec: StrategySpec

    def run(self, name: str, **changes: Any) -> CellOutcome:
        """Run the cell once with some options changed (how it is started); its log is `name`.log."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return runner.run_cell(self.cell, dataclasses.replace(self.options, **changes), self.folder / f"{name}.log")

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.out))
