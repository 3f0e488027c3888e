"""One recipe per task: a module with `setup(config)` (every check, nothing expensive),
`run(config) -> run directory`, and for `validate` `count_cut_texts(config, data)` and
`truncation_note(counts, sizes)`. A new task (causal LM, SFT, DPO, ...) adds a module and a
line here."""

from types import ModuleType

from fintune.recipes import classification

RECIPES: dict[str, ModuleType] = {"classification": classification}
