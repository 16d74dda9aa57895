"""A `--device` this torch build cannot use is one line, not torch's assertion traceback."""

from __future__ import annotations

from audioflamingo.errors import AudioFlamingoError, UsageError


class DeviceUnavailable(AudioFlamingoError):
    """A valid device this machine or torch build does not have (exit 1: the run cannot happen here)."""


def check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise DeviceUnavailable(
                f"--device {device}: this torch build has no CUDA support (a CPU build); "
                "use --device cpu or install a CUDA build of torch"
            )
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"--device {device}: MPS is not available here; use --device cpu")
