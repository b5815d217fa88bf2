"""(d) ShapleyPool with 1 vs 2 CPU actors on the same coalitions: evaluations/s."""

from __future__ import annotations

import statistics
import time

import torch

from fst_ray.shapley.toy import toy_cnn, toy_image
from shapley_parts.common import SIZE, TARGET


def part_d(grid: int, count: int, repeats: int) -> dict:
    import ray

    from fst_ray.runtime import init_ray
    from fst_ray.shapley.pool import ShapleyPool

    init_ray(num_cpus=3, log_to_driver=False)  # 3 logical CPUs: both pools stay up, one runs at a time
    model, image = toy_cnn(), toy_image(SIZE)
    coalitions = torch.rand(count, grid * grid, generator=torch.Generator().manual_seed(0)) < 0.5
    rates = {}
    values = {}
    pools = {k: ShapleyPool(model, n_actors=k, num_cpus=1) for k in (1, 2)}
    games = {k: p.game(image, TARGET, grid=grid) for k, p in pools.items()}
    for k in (1, 2):
        games[k](coalitions[:512])  # warm up the actors
    samples = {1: [], 2: []}
    for _ in range(repeats):  # interleaved
        for k in (1, 2):
            t = time.perf_counter()
            values[k] = games[k](coalitions)
            samples[k].append(count / (time.perf_counter() - t))
    for k in (1, 2):
        rates[k] = statistics.median(samples[k])
        pools[k].shutdown()
    ray.shutdown()
    same = bool(torch.equal(values[1], values[2]))
    print(f"  1 actor {rates[1]:7.0f} evals/s, 2 actors {rates[2]:7.0f} evals/s: {rates[2] / rates[1]:.2f}x "
          f"(identical values: {same})", flush=True)
    return {"one_actor_per_s": rates[1], "two_actors_per_s": rates[2], "speedup": rates[2] / rates[1],
            "identical": same}
