"""fintune: fine-tune and evaluate language models on financial text from one YAML file."""

__version__ = "0.1.0"
