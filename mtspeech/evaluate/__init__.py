"""Evaluation: metrics over predictions and references, the fairness breakdown, reports and plots.

The metrics are pure functions of :class:`UtteranceResult` records (no model code); :mod:`.predict` makes
those records by running a packaged model over a CutSet, and :mod:`.compare` compares whole runs. Entry points::

    records = predict_cuts(load_model("model.pt"), cuts)   # every task the model was trained for
    report = evaluate_predictions(records)        # every metric, 0-100 scores, geometric mean, groups
    paths = write_report(report, "exp/eval")      # report.json, report.md, report.html, plots/*.png

Names are imported lazily so that importing the package (e.g. from the CLI) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UtteranceResult": "records",
    "Reference": "records",
    "Prediction": "records",
    "reference_from_cut": "records",
    "read_results_jsonl": "records",
    "write_results_jsonl": "records",
    "EvaluationOptions": "report",
    "EvaluationReport": "report",
    "evaluate_predictions": "report",
    "load_report": "report",
    "write_report": "render",
    "pareto_plot": "plots",
    "slurp_predictions": "slurp",
    "write_slurp_predictions": "slurp",
    "PredictOptions": "predict",
    "Predictor": "predict",
    "predict_cuts": "predict",
    "read_slurp_predictions": "slurp",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mtspeech.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mtspeech.evaluate' has no attribute {name!r}")
