"""One recipe per task. A new task (causal LM, SFT, DPO, ...) adds a module and a line here."""

from collections.abc import Callable
from pathlib import Path

from fintune.config.schema import ExperimentConfig
from fintune.recipes import classification

RECIPES: dict[str, Callable[[ExperimentConfig], Path]] = {"classification": classification.run}
SETUPS: dict[str, Callable] = {"classification": classification.setup}
