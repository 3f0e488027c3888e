from fintune.models.checks import check_architecture
from fintune.models.load import (
    ModelInfo,
    load_classifier,
    load_saved_classifier,
    pick_device,
    save_classifier,
)

__all__ = [
    "ModelInfo",
    "check_architecture",
    "load_classifier",
    "load_saved_classifier",
    "pick_device",
    "save_classifier",
]
