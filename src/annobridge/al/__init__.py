"""Active learning over any annobridge adapter: score a pool, ask about the least certain, retrain.

See docs/active-learning.md. Needs the ``al`` extra for plots (matplotlib); the GPU path needs
the ``gpu`` extra (CuPy).
"""

from __future__ import annotations

from .gpu import Device, select_device
from .learner import FitReport, Learner, LearnerConfig, PoolScores
from .strategies import STRATEGIES, Candidate, ProbBatch, TopCandidates, select_batch, uncertainty

__all__ = [
    "STRATEGIES",
    "Candidate",
    "Device",
    "FitReport",
    "Learner",
    "LearnerConfig",
    "PoolScores",
    "ProbBatch",
    "TopCandidates",
    "select_batch",
    "select_device",
    "uncertainty",
]
