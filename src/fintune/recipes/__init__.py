"""One recipe per task: a module with `setup(config)` (every check, nothing expensive) and
`run(config) -> run directory`. A new task (causal LM, SFT, DPO, ...) adds a module and a
line here."""

from types import ModuleType

from fintune.recipes import classification

RECIPES: dict[str, ModuleType] = {"classification": classification}
