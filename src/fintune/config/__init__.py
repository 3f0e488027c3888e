from fintune.config.load import apply_override, load_config, read_yaml, validate_config
from fintune.config.schema import ExperimentConfig

__all__ = ["ExperimentConfig", "apply_override", "load_config", "read_yaml", "validate_config"]
