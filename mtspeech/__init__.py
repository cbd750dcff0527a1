"""mtspeech: train, evaluate and serve one speech model for many tasks."""

__version__ = "0.1.0"
