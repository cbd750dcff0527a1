"""Importers that bring your own data into mtspeech's corpus layout (see :mod:`mtspeech.data.corpus`).

Each reads one source format, checks every label against :mod:`mtspeech.data.schema`, reports every input
problem at once (file and line) and only then writes ``manifests/*_{split}.jsonl.gz`` + ``corpus.json``:

* :func:`import_kaldi`  - Kaldi data directories (wav.scp incl. pipes, text, segments, utt2spk, ...)
* :func:`import_slurp`  - SLURP's ``*.jsonl`` + audio directory
* :func:`import_jsonl`  - a generic JSONL manifest, one utterance per line
* :func:`import_lhotse` - existing Lhotse manifests (recordings + supervisions, or cuts)
"""

from __future__ import annotations

from mtspeech.data.importers.common import ImportSummary
from mtspeech.data.importers.jsonl import import_jsonl
from mtspeech.data.importers.kaldi import import_kaldi
from mtspeech.data.importers.lhotse_dir import import_lhotse
from mtspeech.data.importers.slurp import import_slurp

__all__ = ["ImportSummary", "import_jsonl", "import_kaldi", "import_lhotse", "import_slurp"]
