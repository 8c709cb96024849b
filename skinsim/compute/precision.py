"""bfloat16 for the embedding passes that need no gradient: validation, a run's embeddings, queries, archives.

On a CPU with native bfloat16 (AVX512-BF16 or AMX) the trainable stages' convolutions run about twice as fast in
bfloat16 autocast as in float32 (2-core AMD EPYC: 0.10 s against 0.20 s for 64 cached images; a default run's
embeddings 60 s against 119 s). Training's forward and backward stay float32, and so do the frozen trunk's cache
(a bfloat16 cache changed what training learned: docs/results.md) and the embedding head (Linear and L2
normalisation, skinsim.model.embedder). A run records the setting it resolved, and searching it embeds queries the same
way; runs made before the setting read as float32.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch

SETTINGS = ("auto", "bf16", "fp32")


def check_setting(setting: str) -> None:
    """ValueError unless `setting` is one of auto, bf16, fp32."""
    if setting not in SETTINGS:
        raise ValueError(f"--precision must be one of {', '.join(SETTINGS)}, not {setting!r}")


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 natively (emulated bfloat16 is slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve(setting: str, device: torch.device | str) -> str:
    """'bf16' or 'fp32': `auto` is bf16 where the device computes it natively."""
    check_setting(setting)
    if setting == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return setting


def autocast(setting: str, device: torch.device | str) -> AbstractContextManager:
    """The context a no-gradient pass runs in: bfloat16 autocast for 'bf16' (and 'auto' where native), else none."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=resolve(setting, device) == "bf16")
