"""Ray Tune sweeps: architectures and training hyperparameters (ASHA on validation AUC), and τ for Q.

:mod:`~fst_ray.sweep.trial` trains one configuration per trial, :mod:`~fst_ray.sweep.tau` computes Q at one
(τ, variant) from a ``shapley`` table, :mod:`~fst_ray.sweep.run` wires both into resumable Tune experiments.
"""

from fst_ray.sweep.config import SweepConfig, SweepResult
from fst_ray.sweep.run import run_sweep, summary

__all__ = ["SweepConfig", "SweepResult", "run_sweep", "summary"]
