"""The extension points: estimators, baselines and dataset layouts are registries, the configs' choices come from
them, and a new entry of each is one file plus one registration (checked in a fresh interpreter that imports
such a file before anything else)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from fst_ray import datasets
from fst_ray.cli import build_parser
from fst_ray.config import choices
from fst_ray.data.config import PrepareConfig
from fst_ray.hypotheses.config import ExplainSpec, HypothesisConfig
from fst_ray.shapley import baselines, estimate, estimators
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.game import baseline_image


def _choices(model, field: str) -> tuple:
    return choices(model.model_fields[field])


def test_the_configs_offer_what_the_registries_hold():
    assert _choices(ShapleyConfig, "estimator") == _choices(ExplainSpec, "estimator") == ("auto", *estimators.names())
    assert _choices(ShapleyConfig, "baseline") == _choices(ExplainSpec, "baseline") == baselines.names()
    assert _choices(PrepareConfig, "dataset") == _choices(HypothesisConfig.model_fields["prepare"].annotation,
                                                          "dataset") == ("auto", *datasets.LAYOUTS)
    flags = {a.dest: a for a in build_parser(ShapleyConfig, None)._actions}
    assert tuple(flags["estimator"].choices) == ("auto", *estimators.names())
    assert ShapleyConfig.model_json_schema()["properties"]["baseline"]["enum"] == list(baselines.names())
    with pytest.raises(ValueError, match="unknown baseline 'grey'; choose from"):
        ShapleyConfig(input="t", models=["m.pt"], output="o", baseline="grey")


@pytest.mark.parametrize("name", estimators.names())
def test_every_estimator_states_its_minimum_family_and_docs(name):
    spec = estimators.get(name)
    assert spec.family in estimators.FAMILIES and spec.doc
    for n in (4, 9):
        low = spec.min_budget(n)
        assert low >= 2
        weights = torch.arange(1.0, n + 1)
        game = type("Additive", (), {"n_players": n, "__call__": lambda self, c: c.double() @ weights.double()})()
        result = estimate(game, low, name, seed=0)  # the minimum is accepted, and its estimate is exact here
        assert result.n_evals <= low and torch.allclose(result.values, weights.double(), atol=1e-6)
        with pytest.raises(ValueError, match="minimum"):
            estimate(game, low - 1, name)


@pytest.mark.parametrize("name", baselines.names())
def test_every_baseline_fills_removed_cells_with_what_it_registers(name):
    spec = baselines.get(name)
    image = torch.rand(3, 8, 8)
    assert spec.doc
    if spec.others is None:
        assert baseline_image(image, name, 2).shape == image.shape
    else:  # made of other frames: named in errors, and refused without them
        assert spec.needs
        with pytest.raises(ValueError, match="other frames"):
            baseline_image(image, name, 2)
        other = torch.rand(3, 8, 8)
        assert spec.fill(image, 2, [other]).shape[-3:] == image.shape


@pytest.mark.parametrize("name", list(datasets.LAYOUTS))
def test_every_layout_round_trips_its_own_paths(name):
    layout = datasets.get_layout(name)
    assert layout.title and layout.methods and layout.compressions
    fake = layout.parse(layout.video_path(layout.methods[0], layout.compressions[0], _a_fake_name(name)))
    assert fake.det_label == 1 and layout.video_path(fake.method, fake.compression, fake.name) == fake.path


def _a_fake_name(layout: str) -> str:
    return {"ffpp": "000_001", "dfd": "01_02__outside_talking_still_laughing__ZK95PQDE",
            "celebdf": "id0_id1_0000"}[layout]


PLUGIN = '''
"""One file: a new estimator, a new baseline and a new dataset layout, each one registration."""
import torch

from fst_ray.datasets import ORIGINAL, Layout, VideoRef, identity_disjoint, register_layout
from fst_ray.shapley.baselines import register_baseline
from fst_ray.shapley.estimators import register_estimator
from fst_ray.shapley.estimators.permutation import chain_marginals


@register_estimator("randperm", min_budget=lambda n: 2 * n, family="permutation")
def randperm(game, budget, generator):
    """Permutation sampling, each permutation from torch.randperm."""
    n = game.n_players
    p = (budget - 2) // (n - 1)
    ranks = torch.stack([torch.randperm(n, generator=generator) for _ in range(p)]).argsort(1)
    marginals = chain_marginals(game, ranks)
    return marginals.mean(0), marginals.std(0) / p ** 0.5, 2 + p * (n - 1)


register_baseline("grey", lambda image, grid, others: torch.full_like(image, 0.5), "mid-grey")


class Flat(Layout):
    """real/<id>.mp4, each video its own identity; fake/<a>_<b>.mp4, a's scene with b's face."""
    name, title, methods, compressions, donor_videos = "flat", "a flat tree", ("Deepfakes",), ("raw",), True

    def recognise(self, present):
        return any(p.startswith("real/") for p in present)

    def is_video_input(self, path):
        return path.endswith(".mp4")

    def parse(self, path):
        folder, name = path[:-4].split("/")
        if folder == "real":
            return VideoRef(path, ORIGINAL, "raw", name, name, name, (name,))
        a, b = name.split("_")
        return VideoRef(path, "Deepfakes", "raw", name, a, b, (a, b))

    def video_path(self, method, compression, name):
        return f"{'real' if method == ORIGINAL else 'fake'}/{name}.mp4"

    def landmarks_path(self, method, name):
        return f"landmarks/{name}.json"

    def assign_splits(self, root, present, refs, splits_uri, seed):
        return identity_disjoint(refs, seed, {"test": 0.25})


register_layout(Flat())
'''

CHECK = '''
import plugin  # first: its registrations are then the configs' choices too
import torch
from fst_ray import datasets
from fst_ray.cli import build_parser
from fst_ray.config import choices
from fst_ray.data.config import PrepareConfig
from fst_ray.data.manifest import build_manifest
from fst_ray.shapley import estimate
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.game import ImageGame

cfg = ShapleyConfig(input="t", models=["m.pt"], output="o", estimator="randperm", baseline="grey", grid=2, budget=64)
weights = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
game = type("Additive", (), {"n_players": 4, "__call__": lambda self, c: c.double() @ weights})()
assert torch.allclose(estimate(game, 64, "randperm", seed=0).values, weights)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
image_game = ImageGame(model, torch.rand(3, 8, 8), 1, grid=2, baseline="grey")
assert torch.allclose(image_game.baseline, torch.full((3, 8, 8), 0.5))
assert PrepareConfig(input="i", output="o", dataset="flat").dataset == "flat"
people = "abcd"
listing = [(f"real/{p}.mp4", 1) for p in people] + [(f"landmarks/{p}.json", 1) for p in people] + \
    [("fake/a_b.mp4", 1), ("fake/c_d.mp4", 1)]
assert datasets.recognise({p for p, _ in listing}).name == "flat"
rows, errors = build_manifest("root", listing, landmarks="sidecar")
assert {(r.method, r.video) for r in rows} == {("Deepfakes", "a_b"), ("Deepfakes", "c_d"),
                                               *(("original", p) for p in people)}, errors
print("ok", len(rows), len(errors))
'''


def test_a_new_estimator_baseline_and_layout_are_one_file_plus_one_registration_each(tmp_path):
    (tmp_path / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "check.py").write_text(textwrap.dedent(CHECK))
    out = subprocess.run([sys.executable, "check.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok")
