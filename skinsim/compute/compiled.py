"""The frozen trunk through torch.compile where it pays: one fixed batch shape, eager on any failure.

A run with frozen leading stages runs them once per image and cached view (26,000 passes for HAM10000's default
recipe). On two CPU cores inductor's fused kernels make those passes 30% faster (the cache took 166 s instead of
241 s) for about 10 s of compiling; a query or a test's tiny dataset does not pay that back. What stays eager,
and why: compiled, a training step was slower (0.94 s against 0.83 s), and the later stages' embedding passes
gained 10% (100 s against 110 s) while their compiling went into the first epoch.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

import torch

SETTINGS = ("auto", "on", "off")
AUTO_MIN_IMAGES = 2000  # below this the ~10 s of compiling costs more than it saves


def check_setting(setting: str) -> None:
    """ValueError unless `setting` is one of auto, on, off."""
    if setting not in SETTINGS:
        raise ValueError(f"--compile must be one of {', '.join(SETTINGS)}, not {setting!r}")


def use_compile(setting: str, device: torch.device, n_images: int) -> bool:
    """Whether to compile: 'on', 'off', or 'auto' (on the CPU, for 2,000 images or more)."""
    check_setting(setting)
    if setting == "auto":
        return torch.device(device).type == "cpu" and n_images >= AUTO_MIN_IMAGES
    return setting == "on"


class CompiledForward:
    """`forward(x)` compiled for batches of exactly `batch_size` rows; smaller batches are padded with zeros.

    Only for eval-mode networks (no row sees another, so padding rows change nothing) under no_grad. A compile
    that fails (no C++ compiler, an unsupported platform) warns once and leaves the eager forward in its place.
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], batch_size: int, backend: str | Callable
                 = "inductor"):
        self.eager, self.batch_size = forward, batch_size
        self.compiled: Callable | None = torch.compile(forward, dynamic=False, backend=backend)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is None or len(x) > self.batch_size:
            return self.eager(x)
        n = len(x)
        padded = x
        if n < self.batch_size:  # one shape for every call, or each last batch would compile again
            padded = torch.cat([x, x.new_zeros((self.batch_size - n, *x.shape[1:]))])
        # flips and slices of channels-last activations have other strides, and strides are part of the shape
        padded = padded.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else padded.contiguous()
        try:
            return self.compiled(padded)[:n]
        except Exception as exc:  # inductor raises many kinds (compiler missing, lowering, C++ build errors)
            cause = getattr(exc, "inner_exception", None) or exc  # dynamo wraps the backend's own error
            print(f"warning: torch.compile failed ({type(cause).__name__}: {str(cause).strip().splitlines()[0][:200]}); "
                  "running eager (set --compile off to skip trying)", file=sys.stderr)
            self.compiled = None
            return self.eager(x)


def trunk_pass(model: torch.nn.Module, stop: int, compiled: bool,
               batch_size: int = 32) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model.trunk(x, stop)`, through a CompiledForward when `compiled` (32: the batch of trunk_activations and
    embed_batches, the two callers)."""
    eager = lambda x: model.trunk(x, stop)  # noqa: E731
    return CompiledForward(eager, batch_size) if compiled else eager
