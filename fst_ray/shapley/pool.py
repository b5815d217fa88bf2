"""A Ray actor pool that evaluates image games: the Ray layer of the Shapley engine.

Actors hold the models (one actor per GPU when the cluster has GPUs, CPU actors otherwise) and evaluate
coalition chunks; the estimators stay in the driver and are unchanged: ``ShapleyPool.game(...)`` returns a
game with the ``ImageGame`` interface whose evaluations are spread over the actors.

Determinism: the coalitions are drawn in the driver from the seed; they are cut into chunks of a fixed
size (``chunk_size``, independent of the number of actors), cut in turn into forward batches of
``batch_size``, so each value is computed from the same batch whatever actor runs it: the result for a seed is
identical with 1 or n actors. Fault tolerance: a chunk whose actor dies is given to a fresh actor that
replaces it — or, when the cluster has lost the node and no room is left for one (it is not placed within
``REPLACE_TIMEOUT_S``), to the remaining actors; a chunk's values are stored once, by chunk index, so nothing is
lost or counted twice.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ray
import torch
from torch import nn

from fst_ray.shapley.game import ImageGame
from fst_ray.shapley.precision import prepare

__all__ = ["ShapleyPool", "PoolGame", "PoolStats"]

log = logging.getLogger(__name__)

MAX_TRIES = 3  # a chunk whose actor dies more often than this fails the evaluation
REPLACE_TIMEOUT_S = 60.0  # a replacement actor not placed by then is given up: the pool goes on with fewer


@ray.remote
class _Evaluator:
    """Holds the models; evaluates chunks of one image game at a time (the last few games are cached)."""

    def __init__(self, models, threads: int, use_gpu: bool, run: dict):
        torch.set_num_threads(threads)
        device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.models = {k: prepare(m.to(device).eval(), **run) for k, m in models.items()} \
            if isinstance(models, Mapping) else prepare(models.to(device).eval(), **run)
        self.games: dict[str, ImageGame] = {}

    def evaluate(self, key: str, spec: dict, coalitions: torch.Tensor) -> torch.Tensor:
        if key not in self.games:
            if len(self.games) >= 4:
                self.games.pop(next(iter(self.games)))
            spec = dict(spec)
            names = spec.pop("models")
            models = self.models if names is None else {k: self.models[k] for k in names}
            self.games[key] = ImageGame(models, **spec)
        return self.games[key](coalitions)


@dataclass
class PoolStats:
    """Counters since the pool started: chunks evaluated (each once), actors replaced, actors given up (no room
    left for a replacement), chunks redone."""

    chunks: int = 0
    coalitions: int = 0
    replaced: int = 0
    retired: int = 0
    redone: int = 0


class ShapleyPool:
    """A pool of model-holding actors.

    ``models``: one ``nn.Module`` or a mapping ``name -> module`` (as in ``ImageGame``). ``n_actors``:
    default one per GPU, else ``CPU // num_cpus`` of the cluster. ``num_cpus`` (and the torch threads) per
    CPU actor; GPU actors take one GPU each. ``chunk_size``: coalitions per actor task (larger: less Ray
    overhead; smaller: one image's coalitions spread over more actors); ``batch_size``: per forward pass;
    ``precision``, ``channels_last``, ``compile``: how the actors run the models
    (:func:`fst_ray.shapley.precision.prepare`).
    """

    def __init__(self, models: nn.Module | Mapping[str, nn.Module], n_actors: int | None = None,
                 num_cpus: float = 1, chunk_size: int = 512, batch_size: int = 256, precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False):
        resources = ray.cluster_resources()
        self.use_gpu = resources.get("GPU", 0) >= 1
        if n_actors is None:
            n_actors = int(resources["GPU"]) if self.use_gpu else max(1, int(resources.get("CPU", 1) // num_cpus))
        self.chunk_size = int(chunk_size)
        self.batch_size = int(batch_size)
        self.outputs = tuple(models) if isinstance(models, Mapping) else None
        self._models_ref = ray.put(models)
        self._options = {"num_gpus": 1, "num_cpus": 1} if self.use_gpu else {"num_cpus": num_cpus}
        self._threads = max(1, int(num_cpus))
        self._run = {"precision": precision, "channels_last": channels_last, "compile": compile}
        need = {{"num_cpus": "CPU", "num_gpus": "GPU"}[k]: v * n_actors for k, v in self._options.items() if v}
        free = ray.available_resources()
        short = {k: v for k, v in need.items() if free.get(k, 0) < v}
        if short:
            log.warning("ShapleyPool: %d actors need %s, the cluster has %s free: some actors will wait",
                        n_actors, short, {k: free.get(k, 0) for k in short})
        self.actors = [self._spawn() for _ in range(n_actors)]
        self.stats = PoolStats()
        self._lock = threading.Lock()

    def _spawn(self):
        return _Evaluator.options(**self._options).remote(self._models_ref, self._threads, self.use_gpu, self._run)

    def game(self, image: torch.Tensor, target_class, grid: int = 16, baseline="zero", value: str = "logit",
             models: list[str] | None = None) -> PoolGame:
        """The image's game, evaluated by this pool (same arguments as ``ImageGame``); ``models``: names of
        the pool's models to use, in this order (default: all)."""
        return PoolGame(self, image, target_class, grid, baseline, value, models)

    def evaluate(self, key: str, spec: dict, coalitions: torch.Tensor,
                 progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """Values ``[m, k]`` of ``coalitions`` under the game ``spec`` (ImageGame keyword arguments).

        Chunks are handed out two at a time per actor; ``progress(coalitions_done)`` is called after each
        finished chunk. A dead actor is replaced and its chunks are redone (a chunk at most ``MAX_TRIES``
        times: a chunk that keeps killing actors raises). Several threads may evaluate at once (one image
        each, say): the actors interleave their chunks.
        """
        chunks = list(torch.split(coalitions.to(torch.bool).cpu(), self.chunk_size))
        results: list[torch.Tensor | None] = [None] * len(chunks)
        todo = list(range(len(chunks)))[::-1]
        running: dict[ray.ObjectRef, tuple[int, int, ray.actor.ActorHandle]] = {}  # ref -> (chunk, slot, actor)
        spec_ref = ray.put(spec)
        tries = [0] * len(chunks)

        def submit(slot: int) -> None:
            slot, actor = self._live(slot)
            c = todo.pop()
            running[actor.evaluate.remote(key, spec_ref, chunks[c])] = (c, slot, actor)

        for _ in range(2):
            for slot in range(len(self.actors)):
                if todo:
                    submit(slot)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            c, slot, actor = running.pop(ref)
            try:
                values = ray.get(ref)
            except ray.exceptions.RayActorError:
                tries[c] += 1
                if tries[c] > MAX_TRIES:
                    raise
                lost = [c]
                for r, (c2, _, a) in list(running.items()):  # this actor's other chunks in flight
                    if a is actor:
                        del running[r]
                        lost.append(c2)
                self._replace(slot, actor, len(lost))
                todo.extend(sorted(lost, reverse=True))
                for _ in range(2):
                    if todo:
                        submit(slot)
                continue
            results[c] = values.reshape(len(chunks[c]), -1)
            with self._lock:
                self.stats.chunks += 1
                self.stats.coalitions += len(chunks[c])
            if progress is not None:
                progress(len(chunks[c]))
            if todo:
                submit(slot)
        return torch.cat(results) if results else torch.empty(0, 1, dtype=torch.float64)

    def _live(self, slot: int) -> tuple[int, ray.actor.ActorHandle]:
        """``slot`` and its actor, or the next slot that still has one (a slot whose node is gone has none)."""
        actors = list(self.actors)  # one read: another thread may empty a slot meanwhile
        for i in range(len(actors)):
            if actors[(slot + i) % len(actors)] is not None:
                return (slot + i) % len(actors), actors[(slot + i) % len(actors)]
        raise RuntimeError("every evaluation actor was lost and none could be replaced")

    def _replace(self, slot: int, dead, lost: int) -> None:
        """Swap in a fresh actor for a dead one (once, when several evaluations see it die at once); leave the
        slot empty when the fresh one cannot be placed (its node is gone and no other has room)."""
        with self._lock:
            if self.actors[slot] is dead:
                fresh = self._spawn()
                # once a replacement found no room, the next ones are not waited for (the lock stalls the pool)
                wait = min(5.0, REPLACE_TIMEOUT_S) if self.stats.retired else REPLACE_TIMEOUT_S
                ready, _ = ray.wait([fresh.__ray_ready__.remote()], timeout=wait)
                if ready:
                    self.actors[slot] = fresh
                    self.stats.replaced += 1
                else:
                    ray.kill(fresh)
                    self.actors[slot] = None
                    self.stats.retired += 1
                    log.warning("ShapleyPool: an actor was lost and no node has room for another: %d left",
                                sum(a is not None for a in self.actors))
            self.stats.redone += lost

    def shutdown(self) -> None:
        for actor in self.actors:
            if actor is not None:
                ray.kill(actor)
        self.actors = []


class PoolGame:
    """``ImageGame``'s interface, evaluated by a ``ShapleyPool`` (the image goes to the object store once)."""

    def __init__(self, pool: ShapleyPool, image: torch.Tensor, target_class, grid: int = 16,
                 baseline="zero", value: str = "logit", models: list[str] | None = None):
        if models is not None and pool.outputs is None:
            raise ValueError("models= picks among named models; this pool holds one unnamed model")
        self.pool = pool
        self.grid = int(grid)
        self.n_players = self.grid * self.grid
        self.outputs = tuple(models) if models is not None else pool.outputs
        self.spec = {"image": image.detach().cpu(), "target_class": target_class, "grid": self.grid,
                     "baseline": baseline, "value": value, "batch_size": pool.batch_size,
                     "models": None if models is None else list(models)}
        self.key = uuid.uuid4().hex
        self.progress: Callable[[int], None] | None = None

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        values = self.pool.evaluate(self.key, self.spec, coalitions, self.progress)
        return values if self.outputs is not None else values[:, 0]
