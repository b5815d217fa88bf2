"""Where a run's things live: every location named in one place, from the config's roots (local or s3://).

Under a demo's ``--output`` (:meth:`RunLayout.under`); a hypothesis config names ``tables`` and ``work`` itself::

    data/                                   the synthetic corpus             RunLayout.data
    prepared/                               the ingest output                RunLayout.tables
    work/models/{run}/                      a training run                   RunLayout.training_run(run)
    work/models/{run}/models/{role}.pt      its model files                  model_file(run folder, role)
    work/models/{run}/eval/                 their evaluation                 evaluation_dir(run folder)
    work/shapley/{setting}/                 a map cache (one per setting)    RunLayout.maps(setting)
    {job}/                                  a hypothesis job's report        RunLayout.job_output(job)
"""

from __future__ import annotations

from dataclasses import dataclass

from fst_ray import storage

__all__ = ["RunLayout", "model_file", "evaluation_dir"]


def model_file(run: str, role: str) -> str:
    """The model file of ``role`` in the training run folder ``run``."""
    return storage.join(run, "models", f"{role}.pt")


def evaluation_dir(run: str) -> str:
    """Where the evaluation of the training run folder ``run``'s models goes (``metrics.json``, ``metrics.md``)."""
    return storage.join(run, "eval")


@dataclass(frozen=True)
class RunLayout:
    """The locations of one run: ``tables`` (the ingest output), ``work`` (the caches jobs share: training runs,
    maps), ``data`` (the corpus ingested, where there is one)."""

    tables: str
    work: str
    data: str | None = None

    @classmethod
    def under(cls, root: str) -> RunLayout:
        """The demo's layout: everything under one folder."""
        return cls(tables=storage.join(root, "prepared"), work=storage.join(root, "work"),
                   data=storage.join(root, "data"))

    @classmethod
    def of(cls, cfg) -> RunLayout:
        """The layout a hypothesis config names (its ``tables``, ``work`` and ``input``)."""
        return cls(tables=cfg.tables, work=cfg.work, data=cfg.input)

    @property
    def models(self) -> str:
        """The folder of the training runs (a :class:`~fst_ray.train.config.TrainConfig`'s ``output``)."""
        return storage.join(self.work, "models")

    def training_run(self, run: str) -> str:
        return storage.join(self.models, run)

    def maps(self, setting: str) -> str:
        """The Shapley map cache of one explain setting (its name, :func:`fst_ray.hypotheses.pipeline.maps_dir`)."""
        return storage.join(self.work, "shapley", setting)

    def job_output(self, job: str) -> str:
        """A hypothesis job's default output: beside ``work``."""
        return storage.join(storage.parent(self.work), job)
