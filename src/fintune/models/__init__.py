from fintune.models.load import (
    ModelInfo,
    load_classifier,
    load_saved_classifier,
    pick_device,
    save_classifier,
)

__all__ = [
    "ModelInfo",
    "load_classifier",
    "load_saved_classifier",
    "pick_device",
    "save_classifier",
]
