"""Loaders that exist only for the harness's own tests, registered when TTSLOAD_TEST_STRATEGIES=1.

They misbehave on purpose (hang, ...) so that the runner's handling of a bad strategy is tested
on a real cell process; they never appear in a normal run or in `ttsload strategies`.
"""

from __future__ import annotations

import threading
from typing import Any

from strategies.base import Loader
from strategies.loaders import EagerLoader


class HangEagerLoader(EagerLoader):
    """Coqui's eager path that never finishes reading its weights: a hung load, for deadline tests."""

    name = "hang-eager"
    summary = "test only: constructs the model, then blocks forever in the weights phase"

    def fill(self, model: Any, config: Any, files: Any) -> Any:
        threading.Event().wait()  # blocks in Python, so a stack dump shows exactly where
        return model


TEST_LOADERS: dict[str, type[Loader]] = {cls.name: cls for cls in (HangEagerLoader,)}
