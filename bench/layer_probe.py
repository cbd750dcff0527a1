"""Which encoder layer carries each utterance label? Linear probes on every layer of a trained model.

Runs the model's front end and encoder over the train, valid and test cuts of a corpus, keeps the output of the
subsampling and of every Conformer block (and the normalised encoder output), pools each utterance to the mean and
standard deviation of its frames, and fits one logistic-regression probe per task and layer on the train split
(features standardised with train statistics, full-batch L-BFGS, weight decay chosen on valid). Prints valid and
test accuracy per layer, so a head's best input layer shows at a glance: labels carried by prosody (emotion) or
voice (speaker, gender) may fade in the top layers that the CTC loss shapes for the words. For a model whose heads
mix layers (``encoder_layers: mix``) it also records the weights those heads learned.

    python bench/layer_probe.py --model work/runs/synth-small/model.pt --corpus work/corpus-small
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from mtspeech.data.corpus import load_cuts  # noqa: E402
from mtspeech.data.features import load_waveform, pad_waveforms  # noqa: E402
from mtspeech.evaluate.predict import make_batches  # noqa: E402
from mtspeech.evaluate.records import reference_from_cut  # noqa: E402
from mtspeech.model.attention import padding_mask  # noqa: E402
from mtspeech.model.package import load_model  # noqa: E402

TASKS = ("emotion", "speaker", "gender", "language", "accent")
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)


def _pool(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(B, T, D)`` frames -> ``(B, 2D)`` mean and standard deviation over each row's valid frames."""
    weights = valid.unsqueeze(-1).to(x.dtype)
    count = weights.sum(1).clamp_min(1.0)
    mean = (x * weights).sum(1) / count
    var = ((x - mean.unsqueeze(1)) ** 2 * weights).sum(1) / count
    return torch.cat([mean, var.clamp_min(1e-8).sqrt()], dim=-1)


@torch.inference_mode()
def layer_vectors(model: Any, cuts: list[Any], batch_seconds: float) -> tuple[list[torch.Tensor], list[Any]]:
    """Pooled vectors per layer (``[subsampling, block 1..N, encoder output]``, each ``(cuts, 2D)``) and the
    reference labels of the cuts in the same order."""
    per_layer: list[list[torch.Tensor]] = [[] for _ in range(len(model.encoder.blocks) + 2)]
    references = []
    for batch in make_batches(cuts, batch_seconds):
        waves = [load_waveform(cut, model.frontend.sample_rate) for cut in batch]
        padded, lengths = pad_waveforms(waves)
        features, feature_lens = model.features_from_audio(padded, lengths)
        enc, lens, layers = model.encoder(features, feature_lens, keep_layers=True)
        valid = padding_mask(lens, enc.size(1))
        for i, out in enumerate([*layers, enc]):
            per_layer[i].append(_pool(out, valid))
        references.extend(reference_from_cut(cut) for cut in batch)
    return [torch.cat(v) for v in per_layer], references


def fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float) -> torch.nn.Linear:
    """Multinomial logistic regression, full-batch L-BFGS (deterministic)."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.size(1), classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(x), y) + weight_decay * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


def accuracy(probe: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return round(100.0 * float((probe(x).argmax(-1) == y).float().mean()), 2)


def probe_task(task: str, layers: dict[str, list[torch.Tensor]], refs: dict[str, list[Any]]) -> dict[str, Any]:
    """Valid/test accuracy of the best-on-valid probe of every layer for one label."""
    labels = sorted({getattr(r, task) for r in refs["train"] if getattr(r, task) is not None})
    index = {label: i for i, label in enumerate(labels)}

    def rows(split: str) -> tuple[list[int], torch.Tensor]:
        keep = [i for i, r in enumerate(refs[split]) if getattr(r, task) in index]
        return keep, torch.tensor([index[getattr(refs[split][i], task)] for i in keep])

    (train_rows, y_train), (valid_rows, y_valid), (test_rows, y_test) = rows("train"), rows("valid"), rows("test")
    result: dict[str, Any] = {"classes": len(labels), "rows": [len(train_rows), len(valid_rows), len(test_rows)]}
    per_layer = []
    for layer in range(len(layers["train"])):
        x_train = layers["train"][layer][train_rows]
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-5)

        def norm(x: torch.Tensor, mean: torch.Tensor = mean, std: torch.Tensor = std) -> torch.Tensor:
            return (x - mean) / std

        x_valid, x_test = norm(layers["valid"][layer][valid_rows]), norm(layers["test"][layer][test_rows])
        best = None
        for decay in WEIGHT_DECAYS:
            probe = fit_probe(norm(x_train), y_train, len(labels), decay)
            valid_acc = accuracy(probe, x_valid, y_valid)
            if best is None or valid_acc > best[0]:
                best = (valid_acc, accuracy(probe, x_test, y_test), decay)
        per_layer.append({"valid": best[0], "test": best[1], "weight_decay": best[2]})
    result["layers"] = per_layer
    return result


def layer_names(num_blocks: int) -> list[str]:
    return ["subsampling"] + [f"block {i}" for i in range(1, num_blocks + 1)] + ["encoder output"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a trained model file (mtspeech train writes RUN/model.pt)")
    parser.add_argument("--corpus", default="work/corpus-small")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"labels to probe (of {', '.join(TASKS)})")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--results-name", default="layer-probe")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(unknown)}; known: {', '.join(TASKS)}")
    torch.set_num_threads(2)
    model = load_model(args.model).model.eval()
    layers, refs = {}, {}
    for split in ("train", "valid", "test"):
        layers[split], refs[split] = layer_vectors(model, list(load_cuts(args.corpus, split)), args.batch_seconds)
        print(f"{split}: {len(refs[split])} cuts encoded")
    names = layer_names(len(model.encoder.blocks))
    figures: dict[str, Any] = {"model": args.model, "corpus": args.corpus, "layers": names, "tasks": {}}
    # What the model's own mixing heads (encoder_layers: mix) learned to read, beside what the probes find.
    mixes = {
        name: dict(zip(names[:-1], task.head["layer_mix"].logits.softmax(0).tolist(), strict=True))
        for name, task in model.tasks.items()
        if task.reads_layers
    }
    if mixes:
        figures["learned_mix_weights"] = {t: {k: round(v, 3) for k, v in w.items()} for t, w in mixes.items()}
        for task, weights in figures["learned_mix_weights"].items():
            print(f"{task} head's learned layer weights: {weights}")
    for task in tasks:
        result = probe_task(task, layers, refs)
        result["layers"] = {name: r for name, r in zip(names, result["layers"], strict=True)}
        figures["tasks"][task] = result
        cells = "  ".join(f"{name}: {r['valid']:.1f}/{r['test']:.1f}" for name, r in result["layers"].items())
        print(f"{task} ({result['classes']} classes, valid/test %): {cells}")
    command = f"python bench/layer_probe.py --model {args.model} --corpus {args.corpus} --tasks {','.join(tasks)}"
    if args.results_name != "layer-probe":
        command += f" --results-name {args.results_name}"
    print("wrote", write_results(args.results_name, figures, command))


if __name__ == "__main__":
    main()
