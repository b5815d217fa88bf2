"""What an estimator returns."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

__all__ = ["ShapleyResult"]


@dataclass(frozen=True)
class ShapleyResult:
    """Shapley values of a game's players.

    ``values`` and ``stderr`` are float64 ``[n]`` for a one-output game, ``[n, k]`` for a k-output game
    (column j belongs to ``outputs[j]``); ``stderr`` is the estimator's standard error per value (0 for
    ``exact``); ``n_evals`` counts the coalitions evaluated (one per masked image, whatever the number of
    models), never above the budget; ``estimator`` is the estimator that ran (what ``auto`` chose).
    """

    values: torch.Tensor
    stderr: torch.Tensor
    n_evals: int
    estimator: str
    outputs: tuple[str, ...] | None = None

    def output(self, name: str) -> ShapleyResult:
        """The ``[n]`` result of one output of a multi-output game."""
        if self.outputs is None:
            raise ValueError("a one-output result has no named outputs")
        j = self.outputs.index(name)
        return replace(self, values=self.values[:, j], stderr=self.stderr[:, j], outputs=None)

    def by_output(self) -> dict[str, ShapleyResult]:
        """``{name: result}`` for each output (``{"": self}`` for a one-output result)."""
        return {"": self} if self.outputs is None else {k: self.output(k) for k in self.outputs}
