"""How much of its frame budget character CTC needs, per encoder subsampling factor (why the small recipe uses x2).

For every training cut: the transcript's token ids (the run's tokenizer, as the collator encodes them), the frames
a CTC alignment needs (:func:`~mtspeech.data.targets.ctc_min_frames`: tokens plus blanks between repeats) and the
encoder frames the cut gets at each factor (the collator's arithmetic). Reports characters per second of speech
and, per factor, the share of the frames CTC needs (median, 90th percentile) and the cuts over 80% and over 100%
(those cannot be aligned and are masked). Writes bench/results/ctc-frames.json.

    python bench/ctc_frames.py [--corpus work/corpus-small] [--tokenizer work/runs/synth-small/tokenizer]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from mtspeech.data.corpus import manifest_path  # noqa: E402
from mtspeech.data.features import num_feature_frames, subsampled_length  # noqa: E402
from mtspeech.data.targets import ctc_min_frames  # noqa: E402
from mtspeech.data.tokenizer import Tokenizer  # noqa: E402

FACTORS = (2, 4, 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus-small"))
    parser.add_argument("--tokenizer", type=Path, default=Path("work/runs/synth-small/tokenizer"))
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    from lhotse import CutSet

    tokenizer = Tokenizer.load(args.tokenizer)
    needed, frames, rates = [], {f: [] for f in FACTORS}, []
    for cut in CutSet.from_file(manifest_path(args.corpus, "cuts", args.split)):
        text = " ".join(s.text for s in cut.supervisions if s.text)
        ids = tokenizer.encode(text) if text else []
        if not ids:
            continue
        needed.append(ctc_min_frames(ids))
        speech = sum(s.duration for s in cut.supervisions if s.text)
        rates.append(len(text) / speech)
        feature_frames = int(num_feature_frames(cut.num_samples))
        for factor in FACTORS:
            frames[factor].append(int(subsampled_length(feature_frames, factor)))
    need = np.array(needed, dtype=float)
    by_factor = {}
    for factor in FACTORS:
        share = need / np.maximum(np.array(frames[factor], dtype=float), 1.0)
        by_factor[f"x{factor}"] = {
            "frames_per_second": 100 / factor,
            "needed_share_median": round(float(np.median(share)), 3),
            "needed_share_p90": round(float(np.percentile(share, 90)), 3),
            "cuts_over_80_percent": round(float((share > 0.8).mean()), 4),
            "cuts_not_alignable": round(float((share > 1.0).mean()), 4),
        }
        print(f"x{factor}: {by_factor[f'x{factor}']}")
    characters = {f"p{q}": round(float(np.percentile(rates, q)), 1) for q in (10, 50, 90, 99)} | {
        "max": round(float(np.max(rates)), 1)
    }
    print(f"characters per second of speech: {characters}; {len(need)} cuts")
    command = f"python bench/ctc_frames.py --corpus {args.corpus} --tokenizer {args.tokenizer} --split {args.split}"
    figures = {"cuts": len(need), "characters_per_second": characters, "by_factor": by_factor}
    print(f"wrote {write_results('ctc-frames', figures, command)}")


if __name__ == "__main__":
    main()
