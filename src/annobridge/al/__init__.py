"""Active learning over any annobridge adapter: score a pool, ask about the least certain, retrain.

See docs/active-learning.md. Needs the ``al`` extra for plots (matplotlib); the GPU path needs
the ``gpu`` extra (CuPy).
"""

from __future__ import annotations

from .diversity import DIVERSITY, kcenter_greedy, select_diverse
from .gpu import Device, select_device
from .learner import FitReport, Learner, LearnerConfig, PoolScores
from .stopping import StoppingRule, cohen_kappa
from .strategies import STRATEGIES, Candidate, ProbBatch, TopCandidates, select_batch, uncertainty

__all__ = [
    "DIVERSITY",
    "STRATEGIES",
    "Candidate",
    "Device",
    "FitReport",
    "Learner",
    "LearnerConfig",
    "PoolScores",
    "ProbBatch",
    "StoppingRule",
    "TopCandidates",
    "cohen_kappa",
    "kcenter_greedy",
    "select_batch",
    "select_device",
    "select_diverse",
    "uncertainty",
]
