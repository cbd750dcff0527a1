"""Training: config (:mod:`.config`), the loop (:mod:`.trainer`), checkpoints, balancers and curricula.

Entry points: ``mtspeech train CONFIG`` on the command line, :func:`mtspeech.train.trainer.train` in Python.
This package's ``__init__`` imports nothing heavy so that ``mtspeech.train.balancers`` stays cheap to import.
"""
