"""CTC prefix beam search: how many tokens per frame (``ctc_token_topk``) the search needs, on a trained model.

Runs the model once per test cut, keeps the CTC log-probs, then decodes them with beam 4 and each top-k: CER
against the references and the search's own time (the encoder is not timed). Writes
bench/results/ctc-topk.json.

    python bench/ctc_topk.py --model work/runs/synth-small/model.pt --corpus work/corpus-small
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("work/runs/synth-small/model.pt"))
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus-small"))
    parser.add_argument("--topk", default="16,8,4", help="comma-separated ctc_token_topk values")
    parser.add_argument("--beam-size", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import jiwer
    from lhotse import CutSet

    from mtspeech import load
    from mtspeech.data.corpus import manifest_path
    from mtspeech.data.features import load_waveform
    from mtspeech.decode.ctc import ctc_prefix_beam_search

    loaded = load(args.model)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    cuts = list(CutSet.from_file(manifest_path(args.corpus, "cuts", "test")))
    refs, posteriors = [], []
    with torch.inference_mode():
        for cut in cuts:
            wave = torch.from_numpy(load_waveform(cut))[None]
            features, lengths = model.features_from_audio(wave, torch.tensor([wave.size(1)]))
            enc, enc_lens = model.encode(features, lengths)
            posteriors.append((model.tasks["asr_ctc"].log_probs(enc), enc_lens))
            refs.append(" ".join(s.text for s in cut.supervisions if s.text))
    figures: dict[str, dict[str, float]] = {}
    for topk in [int(k) for k in args.topk.split(",")]:
        started = time.perf_counter()
        best = [ctc_prefix_beam_search(lp, n, args.beam_size, topk, blank=0)[0][0] for lp, n in posteriors]
        seconds = time.perf_counter() - started
        hyps = [tokenizer.decode(h.tokens).strip() or "-" for h in best]
        figures[str(topk)] = {"cer": round(100 * jiwer.cer(refs, hyps), 2), "search_seconds": round(seconds, 2)}
        print(f"ctc_token_topk {topk}: {figures[str(topk)]}", flush=True)
    slowest = max(f["search_seconds"] for f in figures.values())
    for entry in figures.values():
        entry["speedup_vs_widest"] = round(slowest / entry["search_seconds"], 2)
    command = f"python bench/ctc_topk.py --model {args.model} --corpus {args.corpus} --topk {args.topk}"
    settings = {"model": str(args.model), "cuts": len(cuts), "beam_size": args.beam_size, "threads": 1}
    print("wrote", write_results("ctc-topk", {"settings": settings, "by_topk": figures}, command))


if __name__ == "__main__":
    main()
