"""(b) masking overhead: evaluations/s of ImageGame vs the raw batched forward of the same model and batch."""

from __future__ import annotations


import torch

from fst_ray.shapley import ImageGame
from fst_ray.shapley.game import baseline_image, masked_images
from fst_ray.shapley.toy import toy_cnn, toy_image
from shapley_parts.common import SIZE, TARGET, paired_rates


def part_b(grid: int, batch: int, repeats: int, device: str) -> dict:
    model = toy_cnn().to(device)
    image = toy_image(SIZE).to(device)
    game = ImageGame(model, image, TARGET, grid=grid, batch_size=batch)
    count = 512
    coalitions = torch.rand(count, grid * grid, generator=torch.Generator().manual_seed(0)) < 0.5
    x = masked_images(image, baseline_image(image, "zero", grid), coalitions[:batch], grid)

    @torch.inference_mode()
    def raw():  # the same number of forward passes of already-built batches
        for _ in range(count // batch):
            model(x)[:, TARGET].double().cpu()

    r, e = paired_rates(raw, lambda: game(coalitions), count, repeats)
    models = {k: toy_cnn(seed=i).to(device) for i, k in enumerate(("source", "target", "det"))}
    three = ImageGame(models, image, TARGET, grid=grid, batch_size=batch)
    singles = [ImageGame(m, image, TARGET, grid=grid, batch_size=batch) for m in models.values()]
    t1, t3 = paired_rates(lambda: [g(coalitions) for g in singles], lambda: three(coalitions), count, repeats)
    print(f"  [{device}] batch {batch}: raw forward {r:7.0f} img/s, engine {e:7.0f} evals/s, overhead "
          f"{100 * (1 - e / r):5.1f}% | 3 models: one pass {t3:6.0f} evals/s, 3 separate games {t1:6.0f} "
          f"evals/s ({t3 / t1:.2f}x)", flush=True)
    return {"device": device, "batch": batch, "raw_per_s": r, "engine_per_s": e, "overhead": 1 - e / r,
            "three_models_one_pass_per_s": t3, "three_games_per_s": t1}
