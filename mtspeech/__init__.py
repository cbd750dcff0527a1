"""mtspeech: train, evaluate and serve one speech model for many tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]

if TYPE_CHECKING:
    from mtspeech.model.package import load_model as load


def __getattr__(name: str) -> Any:
    # Lazy: `import mtspeech` stays cheap (no torch) for the CLI; `mtspeech.load(path)` pulls the model in.
    if name == "load":
        from mtspeech.model.package import load_model

        return load_model
    raise AttributeError(f"module 'mtspeech' has no attribute {name!r}")
