"""Pick the device: spaCy's GPU path (CuPy) when asked for and usable, else the CPU, said out loud.

spaCy's GPU path is CuPy only (``thinc.util.require_gpu``). It must be chosen before a
pipeline is built or loaded, because each model keeps the ``Ops`` current at its creation.
Uncertainty arithmetic uses the pipeline model's own ``ops.xp`` (numpy or cupy), so on a GPU
the probabilities never leave the device; only one float per document is copied back.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = ["Device", "select_device", "to_host", "xp_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """Where a Learner runs. ``reason`` says why it is the CPU when a GPU was asked for."""

    kind: str  # "gpu" or "cpu"
    gpu_id: int | None = None
    reason: str | None = None

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    def describe(self) -> str:
        if self.is_gpu:
            return f"GPU {self.gpu_id} (CuPy)"
        return "CPU" + (f" ({self.reason})" if self.reason else "")


def select_device(gpu: int | None) -> Device:
    """A negative id: CPU. ``None``: keep whatever thinc uses now. Otherwise ``spacy.require_gpu(gpu)``.

    Without CuPy, a driver or a device this warns (``RuntimeWarning``) and returns the CPU
    instead of failing: an active-learning round is slower on the CPU, not wrong.
    """
    import spacy

    if gpu is None:
        from thinc.api import get_current_ops

        ops = get_current_ops()
        if type(ops).__name__ == "CupyOps":
            return Device("gpu", getattr(ops, "device_id", 0))
        return Device("cpu")
    if gpu < 0:
        spacy.require_cpu()
        return Device("cpu")
    try:
        spacy.require_gpu(gpu)
    except Exception as exc:  # thinc raises ValueError; CUDA runtime errors come as other types
        reason = f"GPU {gpu} not usable: {exc}"
        hint = " Install the GPU extra (pip install 'annobridge[gpu]') on a machine with an NVIDIA driver."
        warnings.warn(f"{reason}; running on the CPU.{hint}", RuntimeWarning, stacklevel=2)
        log.warning("%s; running on the CPU", reason)
        spacy.require_cpu()
        return Device("cpu", None, reason)
    log.info("Using GPU %d via CuPy", gpu)
    return Device("gpu", gpu)


def xp_of(ops: Any) -> Any:
    """The array module of a thinc ``Ops`` (numpy for NumpyOps, cupy for CupyOps)."""
    return ops.xp


def to_host(ops: Any, array: Any) -> Any:
    """Copy a device array to a numpy array (no copy on the CPU)."""
    return ops.to_numpy(array)
