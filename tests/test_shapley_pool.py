"""The Ray actor pool: same results whatever the number of actors; a killed actor loses and duplicates nothing."""

import pytest
import ray
import torch

from fst_ray.shapley import ImageGame, estimate
from fst_ray.shapley.pool import ShapleyPool
from fst_ray.shapley.toy import toy_cnn, toy_image

MODELS = {"source": toy_cnn(width=4, seed=1), "det": toy_cnn(2, width=4, seed=2)}
TARGETS = {"source": 3, "det": 1}


@pytest.fixture(scope="module")
def image():
    return toy_image(32, seed=4)


@pytest.mark.parametrize("method", ["leverage", "adjusted"])
@pytest.mark.slow
def test_one_and_two_actors_give_identical_results(ray_session, image, method):
    results = []
    for n_actors in (1, 2):
        pool = ShapleyPool(MODELS, n_actors=n_actors, num_cpus=0.5, chunk_size=64, batch_size=32)
        game = pool.game(image, TARGETS, grid=8)
        assert game.n_players == 64 and game.outputs == ("source", "det")
        results.append(estimate(game, 700, method, seed=3))
        assert pool.stats.chunks == -(-results[-1].n_evals // 64) and pool.stats.replaced == 0
        pool.shutdown()
    assert torch.equal(results[0].values, results[1].values)
    assert torch.equal(results[0].stderr, results[1].stderr)
    # and the pool computes what the local game computes
    local = estimate(ImageGame(MODELS, image, TARGETS, grid=8, batch_size=32), 700, method, seed=3)
    assert torch.allclose(local.values, results[0].values, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_killed_actor_is_replaced_and_nothing_is_lost_or_counted_twice(ray_session, image):
    pool = ShapleyPool(MODELS["source"], n_actors=2, num_cpus=0.5, chunk_size=16, batch_size=16)
    game = pool.game(image, 3, grid=4)
    coalitions = torch.rand(400, 16, generator=torch.Generator().manual_seed(0)) < 0.5
    reference = game(coalitions)
    assert reference.shape == (400,)
    before = pool.stats.chunks

    victim = pool.actors[0]
    done = []

    def kill_after_first_chunk(n: int) -> None:
        done.append(n)
        if len(done) == 1:
            ray.kill(victim)

    game.progress = kill_after_first_chunk
    values = game(coalitions)
    assert torch.equal(values, reference)
    assert sum(done) == 400  # every coalition reported once
    assert pool.stats.chunks - before == 25  # each chunk stored once
    assert pool.stats.replaced == 1 and pool.stats.redone >= 1
    assert victim not in pool.actors
    pool.shutdown()


def test_reduced_precision_runs_under_autocast_and_returns_fp32_logits_close_to_fp32():
    from fst_ray.shapley.precision import prepare

    model = MODELS["det"].eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = model(x)
        assert prepare(model) is model  # fp32, nothing else asked: the model itself
        for precision, tolerance in (("bf16", 0.05), ("fp32", 1e-6)):
            got = prepare(model, precision, channels_last=True)(x)
            assert got.dtype == torch.float32
            error = float((got - exact).abs().max() / exact.abs().max())
            assert error <= tolerance, (precision, error)
        assert float((prepare(model, "bf16")(x) - exact).abs().max()) > 0  # it did run in bf16
    with pytest.raises(ValueError, match="precision"):
        prepare(model, "int8")


@pytest.mark.slow
def test_the_pool_evaluates_in_the_precision_asked(ray_session, image):
    coalitions = torch.rand(64, 16, generator=torch.Generator().manual_seed(0)) < 0.5
    values = {}
    for precision in ("fp32", "bf16"):
        pool = ShapleyPool(MODELS, n_actors=1, num_cpus=0.5, chunk_size=64, batch_size=32, precision=precision)
        values[precision] = pool.game(image, TARGETS, grid=4)(coalitions)
        pool.shutdown()
    local = ImageGame(MODELS, image, TARGETS, grid=4, batch_size=32)(coalitions)
    assert torch.allclose(values["fp32"], local, rtol=1e-6, atol=1e-9)
    assert not torch.equal(values["bf16"], local)
    assert float((values["bf16"] - local).abs().max()) <= 0.05 * float(local.abs().max())
