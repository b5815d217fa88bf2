"""Ray Tune sweeps: architectures and training hyperparameters (ASHA on validation AUC), and τ for Q.

:mod:`~fst_ray.sweep.config` holds the job's config and result, :mod:`~fst_ray.sweep.trial` trains one
configuration per trial, :mod:`~fst_ray.sweep.tau` computes Q at one (τ, variant) from a ``shapley`` table,
:mod:`~fst_ray.sweep.run` wires both into resumable Tune experiments. (Nothing is imported here, so that a
τ trial's actor loads numpy and the metrics only, not torch and timm.)
"""
