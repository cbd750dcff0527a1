"""The one log-mel front end shared by training, serving and export, plus the frame arithmetic around it.

The front end wraps Lhotse's torch Kaldi-fbank layer (``Wav2LogFilterBank``, the same code ``lhotse.Fbank``
runs), so features match Lhotse's kaldi-compatible fbank while staying an ``nn.Module`` that travels with the
model. Frame counts follow Kaldi with ``snip_edges=False``: ``num_frames(n) = (n + hop // 2) // hop``.

Encoder frame arithmetic (``subsampled_length``) mirrors WeNet-style Conv2d subsampling with *no padding*:
factor 4 is two convolutions with kernel 3 and stride 2, so ``T_enc = ((T - 1) // 2 - 1) // 2``. The encoder
must use the layout listed in :data:`SUBSAMPLING_LAYOUTS` for its factor, or VAD targets will be misaligned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
from lhotse.features.kaldi.layers import Wav2LogFilterBank
from torch import nn

from mtspeech.data.schema import SAMPLE_RATE

if TYPE_CHECKING:
    from lhotse.cut import Cut

NUM_MEL_BINS = 80

# (kernel, stride) of each time-axis convolution of the encoder's subsampling front, per factor.
SUBSAMPLING_LAYOUTS: dict[int, tuple[tuple[int, int], ...]] = {
    1: (),
    2: ((3, 2),),
    4: ((3, 2), (3, 2)),
    6: ((3, 2), (5, 3)),
    8: ((3, 2), (3, 2), (3, 2)),
}


def num_feature_frames(num_samples: int | torch.Tensor, hop_length: int = 160) -> int | torch.Tensor:
    """Feature frames of ``num_samples`` samples (Kaldi, ``snip_edges=False``): ``(n + hop // 2) // hop``."""
    return (num_samples + hop_length // 2) // hop_length


def _layout(factor: int) -> tuple[tuple[int, int], ...]:
    if factor not in SUBSAMPLING_LAYOUTS:
        raise ValueError(f"subsampling factor must be one of {sorted(SUBSAMPLING_LAYOUTS)}, got {factor}")
    return SUBSAMPLING_LAYOUTS[factor]


def subsampled_length(num_frames: int | torch.Tensor, factor: int = 4) -> int | torch.Tensor:
    """Encoder frames after unpadded conv subsampling; for factor 4: ``((T - 1) // 2 - 1) // 2`` (may be <= 0)."""
    length = num_frames
    for kernel, stride in _layout(factor):
        length = (length - kernel) // stride + 1
    return length


def encoder_frame_centres(num_enc_frames: int, factor: int = 4) -> torch.Tensor:
    """Centre of each encoder frame's receptive field, in input (10 ms) frame indices, as float.

    For factor 4 frame ``j`` sees input frames ``4j .. 4j + 6`` and its centre is ``4j + 3``."""
    centres = torch.arange(num_enc_frames, dtype=torch.float64)
    for kernel, stride in reversed(_layout(factor)):
        centres = centres * stride + (kernel - 1) / 2
    return centres


def encoder_frame_times(num_enc_frames: int, factor: int, feature_shift: float) -> torch.Tensor:
    """Centre of each encoder frame's receptive field in seconds; input frame ``k`` (Kaldi framing, no edge
    snipping) is centred at ``(k + 0.5) * feature_shift``. VAD targets, the VAD answer and its evaluation all
    place frames with it."""
    return (encoder_frame_centres(num_enc_frames, factor) + 0.5) * feature_shift


def _constants_to_buffers(module: nn.Module) -> None:
    """Lhotse keeps the window, mel matrix and epsilon as frozen ``nn.Parameter``s; re-register them as buffers
    (same state_dict keys) so the front end has no parameters at all and optimisers, parameter counts and EMA
    never see them."""
    for sub in list(module.modules()):
        for name, param in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, param.detach())


class LogMelFrontend(nn.Module):
    """Padded 16 kHz waveforms ``(B, N)`` + lengths -> log-mel ``(B, T, 80)`` + frame lengths.

    Exact for padded batches: each row's padding is replaced by the reflection of its own end before
    framing, so a row's features equal those of the same waveform computed alone (what Kaldi/Lhotse do at
    the end of a signal). Optional global CMVN lives in buffers (identity until :meth:`set_cmvn`), so it is
    saved in the model's ``state_dict``. Padded frames are zero in the output.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        num_mel_bins: int = NUM_MEL_BINS,
        frame_length: float = 0.025,
        frame_shift: float = 0.010,
        dither: float = 0.0,
        low_freq: float = 20.0,
        high_freq: float = -400.0,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.frame_length = frame_length
        self.frame_shift = frame_shift
        self.window_length = int(round(frame_length * sample_rate))
        self.hop_length = int(round(frame_shift * sample_rate))
        self.fbank = Wav2LogFilterBank(
            sampling_rate=sample_rate,
            frame_length=frame_length,
            frame_shift=frame_shift,
            num_filters=num_mel_bins,
            dither=dither,
            low_freq=low_freq,
            high_freq=high_freq,
            snip_edges=False,
        )
        _constants_to_buffers(self.fbank)
        self.register_buffer("cmvn_mean", torch.zeros(num_mel_bins))
        self.register_buffer("cmvn_istd", torch.ones(num_mel_bins))

    def num_frames(self, num_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Frames for ``num_samples`` samples (Kaldi, ``snip_edges=False``): ``(n + hop // 2) // hop``."""
        return num_feature_frames(num_samples, self.hop_length)

    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Enable global mean/variance normalisation with per-bin ``mean`` and ``std`` (shape ``(80,)``)."""
        if mean.shape != (self.num_mel_bins,) or std.shape != (self.num_mel_bins,):
            raise ValueError(f"CMVN stats must have shape ({self.num_mel_bins},), got {mean.shape} and {std.shape}")
        self.cmvn_mean.copy_(mean.to(self.cmvn_mean))
        self.cmvn_istd.copy_(1.0 / std.to(self.cmvn_istd).clamp_min(1e-5))

    def log_mel(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-normalised log-mel features (what CMVN statistics are computed on)."""
        if waveforms.dim() == 1:
            waveforms = waveforms.unsqueeze(0)
        batch, width = waveforms.shape
        if lengths is None:
            lengths = torch.full((batch,), width, dtype=torch.long, device=waveforms.device)
        lengths = lengths.to(device=waveforms.device, dtype=torch.long)
        # Extend every row by one window of its own reflected tail: frames that reach past a row's end then see
        # exactly what Lhotse's edge reflection would give that row alone (rather than zeros or a neighbour).
        positions = torch.arange(width + self.window_length, device=waveforms.device).unsqueeze(0)
        row_len = lengths.unsqueeze(1)
        index = torch.where(positions < row_len, positions, 2 * row_len - 1 - positions)
        index = index.clamp(min=0, max=width - 1)
        extended = torch.gather(waveforms, 1, index.expand(batch, -1))
        # Always float32: under a bf16/fp16 autocast the FFT power and mel matmul would lose the dynamic range
        # that the log needs.
        with torch.autocast(device_type=extended.device.type, enabled=False):
            feats = self.fbank(extended.float())
        frame_lens = num_feature_frames(lengths, self.hop_length)
        max_frames = num_feature_frames(width, self.hop_length)
        feats = feats[:, :max_frames]
        return feats, frame_lens

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frame_lens = self.log_mel(waveforms, lengths)
        feats = (feats - self.cmvn_mean) * self.cmvn_istd
        valid = torch.arange(feats.size(1), device=feats.device).unsqueeze(0) < frame_lens.unsqueeze(1)
        return feats * valid.unsqueeze(-1).to(feats.dtype), frame_lens


def load_waveform(cut: Cut, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples of ``cut`` at ``sample_rate``: resampled by Lhotse if needed, channels averaged."""
    if cut.sampling_rate != sample_rate:
        cut = cut.resample(sample_rate)
    audio = cut.load_audio()
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    return np.ascontiguousarray(audio, dtype=np.float32)


def pad_waveforms(waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms into ``(B, N_max)`` + lengths ``(B,)``."""
    lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
    padded = torch.zeros(len(waveforms), int(lengths.max()) if len(waveforms) else 0)
    for row, wave in enumerate(waveforms):
        padded[row, : len(wave)] = torch.from_numpy(wave)
    return padded, lengths


@torch.no_grad()
def compute_global_cmvn(
    cuts: Iterable[Cut], frontend: LogMelFrontend, max_cuts: int = 1000, batch_size: int = 16, apply: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and std of the raw log-mel features of the first ``max_cuts`` cuts (float64 sums).

    With ``apply`` the statistics are stored in ``frontend`` right away."""
    total = torch.zeros(frontend.num_mel_bins, dtype=torch.float64)
    total_sq = torch.zeros(frontend.num_mel_bins, dtype=torch.float64)
    count = 0

    def accumulate(waves: list[np.ndarray]) -> None:
        nonlocal total, total_sq, count
        padded, lengths = pad_waveforms(waves)
        feats, frame_lens = frontend.log_mel(padded, lengths)
        valid = torch.arange(feats.size(1)).unsqueeze(0) < frame_lens.unsqueeze(1)
        frames = feats[valid].double()
        total += frames.sum(0)
        total_sq += (frames**2).sum(0)
        count += frames.size(0)

    pending: list[np.ndarray] = []
    for index, cut in enumerate(cuts):
        if index >= max_cuts:
            break
        pending.append(load_waveform(cut, frontend.sample_rate))
        if len(pending) == batch_size:
            accumulate(pending)
            pending = []
    if pending:
        accumulate(pending)
    if count == 0:
        raise ValueError("compute_global_cmvn: the cuts gave no feature frames (empty cut set or empty audio)")
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(0.0).sqrt()
    if apply:
        frontend.set_cmvn(mean.float(), std.float())
    return mean.float(), std.float()
