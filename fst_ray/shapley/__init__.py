"""Shapley regional contributions: image games, estimators, and (in ``pool``) a Ray actor pool.

    game = ImageGame(model, image, target_class, grid=16)            # players: the 256 grid cells
    result = estimate(game, budget=2560, estimator="auto", seed=0)      # ShapleyResult(values, stderr, n_evals)
"""

from fst_ray.shapley.estimate import CHOICES, estimate
from fst_ray.shapley.baselines import BASELINES
from fst_ray.shapley.game import VALUES, Game, ImageGame
from fst_ray.shapley.result import ShapleyResult

__all__ = ["ImageGame", "Game", "estimate", "ShapleyResult", "CHOICES", "BASELINES", "VALUES"]
