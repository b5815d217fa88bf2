"""Known answers, fast layer: oracle models whose exact Shapley maps are known in closed form, put through the
estimator, the noise ceilings, the hypotheses' statistics (H1's Q summary, H2's method fields, H3's stability
row) and the reading rule, must read back the answer planted in them.

An oracle is additive in the grid's cells: the logit of its class is Σ_c w_c · x_c, x_c one pixel of cell c
(a fixed channel and position inside every cell: the pixel the model "looks at"), so under the zero baseline
the exact φ_c = w_c · x_c (a linear game: every estimator is exact on it, and a map's halves agree: ceiling 1).
The images' pixels are drawn independently, so models that read different pixels have independent maps. Each
model reads a pixel of its own: had they read the same ones (measured with cell means of one channel), every
map would scale with the same cell brightness and a detector weighing every cell alike would share the
encoders' bright cells (H1 then read "contradicts", gap -0.008, CI -0.014..-0.0004: a real dependence through
the image, not a null). Where each model's weight lies plants the answer; each scenario says why below.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fst_ray import metrics
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import q_summary
from fst_ray.hypotheses.h2 import method_fields
from fst_ray.hypotheses.h3 import stability_row
from fst_ray.hypotheses.readings import read_h1, read_h2, read_h3
from fst_ray.hypotheses.results import Ceiling, H1Result, H2Result, H3Result
from fst_ray.shapley import ImageGame
from fst_ray.shapley.estimate import estimate_maps

G, CELL, N_IDS, PER_ID = 4, 4, 12, 2
INTERIOR = [5, 6, 9, 10]
RING = [c for c in range(G * G) if c not in INTERIOR]
EVERY = list(range(G * G))
CORNERS = [0, 3, 12, 15]
CFG = HypothesisConfig(n_boot=400)
CLUSTERS = [f"{i:03d}" for i in range(N_IDS) for _ in range(PER_ID)]


class PixelOracle(nn.Module):
    """Logits ``[B, 2]``: class 1 = Σ_c w_c · (pixel ``pixel`` of cell c, channel ``channel``) of ``[B, 3, S, S]``
    (S = G · CELL); class 0 = 0."""

    def __init__(self, cells: list[int], channel: int, pixel: int):
        super().__init__()
        w = torch.zeros(G * G)
        w[cells] = 1.0
        self.register_buffer("w", w)
        self.channel, self.dy, self.dx = channel, pixel // CELL, pixel % CELL

    def read(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.channel, self.dy::CELL, self.dx::CELL].flatten(1)  # [B, G²]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.read(x) @ self.w
        return torch.stack([torch.zeros_like(v), v], 1)


def _images(seed: int = 0) -> np.ndarray:
    """``[N, 3, S, S]`` pixels drawn independently in 0.2..1."""
    return np.random.default_rng(seed).uniform(0.2, 1.0, (len(CLUSTERS), 3, G * CELL, G * CELL))


def _maps(models: dict[str, PixelOracle], images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per model: unit-norm maps ``[N, G²]`` and the halves ``phi_a``, ``phi_b``, each map estimated from
    coalitions of its own (per_model seeds), checked against the closed form."""
    out = {r: ([], [], []) for r in models}
    for j, array in enumerate(images):
        image = torch.as_tensor(array, dtype=torch.float32)

        def game_of(names, image=image):
            return ImageGame({n: models[n] for n in names}, image, dict.fromkeys(names, 1), grid=G)

        maps, _ = estimate_maps(game_of, {r: 1000 * j + i for i, r in enumerate(models)}, budget=160)
        for r, m in maps.items():
            exact = models[r].w.numpy() * models[r].read(image[None])[0].numpy()
            assert np.allclose(m["phi"].numpy(), exact, atol=1e-5), r  # the closed form
            for part, value in zip(out[r], (metrics.unit_norm(m["phi"].numpy()), m["phi_a"].numpy(),
                                            m["phi_b"].numpy())):
                part.append(value)
    return {r: tuple(np.stack(p) for p in parts) for r, parts in out.items()}


def _ceilings(maps: dict) -> dict[str, Ceiling]:
    out = {}
    for r, (_, a, b) in maps.items():
        c = metrics.ceiling_summary(a, b, CLUSTERS, n_boot=200)
        out[r] = Ceiling(**c, readable=c["centred"] >= metrics.READABLE_CEILING)
    return out


ENCODERS = {"source": PixelOracle(INTERIOR[:2], 0, 0), "target": PixelOracle(INTERIOR[2:], 1, 0)}
PROTOCOL = {"explained": "raw", "coalitions": "per_model", "architecture": "oracle"}


@pytest.mark.parametrize("detector_cells, expected", [(RING, "supports"), (INTERIOR, "contradicts"),
                                                      (EVERY, "inconclusive")],
                         ids=["H1 holds: artifacts off the identity", "H1 fails: artifacts on the identity",
                              "null: the detector weighs every cell alike"])
def test_h1_reads_back_the_answer_planted_in_oracle_models(detector_cells, expected):
    """Holds: the detector weighs only the ring of boundary cells, the encoders only the interior, so its
    evidence lies outside the cells that identify source or target: Q above its shuffled baseline. Fails: the
    detector weighs the encoders' interior cells: Q below it. Null: the detector weighs every cell alike, its
    map unrelated to where the encoders look: the gap's CI covers 0."""
    maps = _maps({**ENCODERS, "det": PixelOracle(detector_cells, 2, 0)}, _images())
    ceilings = _ceilings(maps)
    assert all(c.readable and c.centred > 0.99 for c in ceilings.values())  # exact maps: ceilings 1
    q = q_summary(*(maps[r][0] for r in ("source", "target", "det")), CFG, CLUSTERS, ceilings)
    (reading,) = read_h1(H1Result(variant=CFG.variant, tau=list(CFG.tau), q={"Planted": {"oracle": q}},
                                  protocol=PROTOCOL))
    assert reading.verdict == expected, (reading, q.gap, q.gap_ci)


@pytest.mark.parametrize("paired_cells, unpaired_cells, auc, expected", [
    (RING, INTERIOR, 1.0, "supports"), (INTERIOR, RING, 1.0, "contradicts"), (RING, RING, 1.0, "inconclusive"),
    (RING, INTERIOR, 0.5, "not read")],
    ids=["H2 holds: the paired detector looks off the identity", "H2 reversed", "null: both alike",
         "a detector at chance is not read"])
def test_h2_reads_back_the_answer_planted_in_oracle_detectors(paired_cells, unpaired_cells, auc, expected):
    """Holds: the paired detector weighs the ring, the unpaired one the interior the encoders use, so the paired
    gap exceeds the unpaired one. Reversed: the opposite. Null: both weigh the ring, reading different pixels
    (independent maps, equal in law): the difference's CI covers 0. A detector at chance (AUC 0.5, an input
    here: oracles are not trained) is not read whatever its maps say."""
    models = {**ENCODERS, "paired": PixelOracle(paired_cells, 2, 0), "unpaired": PixelOracle(unpaired_cells, 2, 5)}
    maps = _maps(models, _images())
    fields = method_fields(maps["source"][0], maps["target"][0], {d: maps[d][0] for d in ("paired", "unpaired")},
                           CLUSTERS, CFG)
    result = H2Result(variant=CFG.variant, tau=list(CFG.tau), protocol=PROTOCOL, noise_ceiling=_ceilings(maps),
                      auc_paired={"Planted": auc}, auc_unpaired={"Planted": 1.0},
                      **{k: {"Planted": v} for k, v in fields.items()})
    (reading,) = read_h2(result)
    assert reading.verdict == expected, (reading, fields["difference"], fields["difference_ci"])


def _compressed(images: np.ndarray, fine: list[tuple[int, int]], keep: float, seed: int) -> np.ndarray:
    """``images`` with the ``fine`` pixels of every cell ((channel, position) pairs) mixed with fresh noise
    (``keep`` of the original left: what a coarser compression erases); every other pixel unchanged."""
    out = images.copy()
    rng = np.random.default_rng(seed)
    for ch, p in fine:
        view = out[:, ch, p // CELL::CELL, p % CELL::CELL]
        out[:, ch, p // CELL::CELL, p % CELL::CELL] = keep * view + (1 - keep) * rng.uniform(0.2, 1.0, view.shape)
    return out


@pytest.mark.parametrize("detector_pixel, encoder_pixel, expected", [
    (3, 0, "supports"), (0, 3, "contradicts"), (3, 3, "inconclusive")],
    ids=["H3 holds: the detector's pixels are erased by compression", "H3 reversed",
         "null: every model's pixels erased alike"])
def test_h3_reads_back_the_answer_planted_in_oracle_models(detector_pixel, encoder_pixel, expected):
    """Compression re-draws the 'fine' pixel (position 3 of every cell, every channel) partly at c23 and mostly at
    c40 and keeps position 0. Holds: the detector reads the fine pixel, the encoders the kept one: the
    detector's δ falls, theirs stays 1, contrast > 0. Reversed: contrast < 0. Null: every model reads a fine
    pixel (of its own channel): all δ fall alike, the contrast's CI covers 0.

    Every model weighs 4 cells: δ also depends on how many cells a map weighs, not only on what compression
    does to them (measured: with the encoders on 2 cells each and the detector on 12, the null read "supports",
    contrast 0.12, CI 0.09..0.14: a sparse map's centred cosine is dominated by its fixed support and stays
    high while its values change). H3 compares models whose maps may differ in sparsity; see docs/science.md,
    "Noise"."""
    models = {"source": PixelOracle(INTERIOR, 0, encoder_pixel), "target": PixelOracle(INTERIOR, 1, encoder_pixel),
              "detector": PixelOracle(CORNERS, 2, detector_pixel)}
    raw = _images()
    fine = [(ch, 3) for ch in range(3)]
    at = {"raw": raw, "c23": _compressed(raw, fine, 0.6, 1), "c40": _compressed(raw, fine, 0.2, 2)}
    maps = {c: _maps(models, images) for c, images in at.items()}
    measured = {r: ([maps[c][r][0] for c in at], [maps[c][r][1:] for c in at]) for r in models}
    row = stability_row(measured, CLUSTERS, CFG)
    ceilings = {r: {c: _ceilings({r: maps[c][r]})[r] for c in at} for r in models}
    (reading,) = read_h3(H3Result(delta={"Planted": row}, protocol=PROTOCOL, noise_ceiling=ceilings))
    assert reading.verdict == expected, (reading, row.contrast, row.contrast_ci)


# --- oracle model files through the H1 job ---------------------------------------------------------------------------
# The same idea as files: ``cell_oracle_g2`` (fst_ray.models.oracle) is linear in the 2x2 cells' means, its exact map
# known in closed form (``exact_map``); saved as model files and given to the H1 job as its checkpoints, they go
# through everything a trained model does (Ray actors, the map cache, ceilings, the baseline check, the reading).
# Encoders weigh cells 0 (source) and 1 (target); a detector on cells 2 and 3 lies outside them: H1 holds; a
# detector on cells 0 and 1 is on them: H1 fails.

@pytest.fixture(scope="module")
def oracle_cfg(tmp_path_factory, ray_session):
    from fst_ray.hypotheses import pipeline
    from fst_ray.synth.config import SynthConfig
    from fst_ray.synth.generate import generate_corpus

    root = tmp_path_factory.mktemp("oracle")
    corpus = SynthConfig(output=str(root / "data"), identities=8, frames=4, size=32, methods=["Deepfakes"],
                         contact_sheet=False)
    generate_corpus(corpus)
    cfg = HypothesisConfig.model_validate(dict(
        input=corpus.output, tables=str(root / "prepared"), work=str(root / "work"), methods=corpus.methods,
        archs=["cell_oracle_g2"], prepare=dict(frames_per_video=4, size=32),
        explain=dict(images_per_method=4, grid=2, budget=32, actors=1, baseline="zero"),  # exact_map: zero
        n_boot=200))  # halves of 16 = 2^4: exact
    pipeline.ensure_tables(cfg)
    return cfg


def _oracle_file(path, role: str, weights: dict[int, float], classes: list[str] | None) -> str:
    from fst_ray.models import create_model, save_model

    num_classes = len(classes) if classes else 2
    model = create_model(role, "cell_oracle_g2", num_classes)
    with torch.no_grad():
        for ch in range(3):  # every class weighs the same cells: whichever class is explained, the map is planted
            for cell, w in weights.items():
                model.backbone.weight[:, ch * 4 + cell] = w
    save_model(str(path), model, role=role, arch="cell_oracle_g2", num_classes=num_classes, classes=classes)
    return str(path)


@pytest.mark.parametrize("det_cells, expected", [([2, 3], "supports"), ([0, 1], "contradicts")])
@pytest.mark.slow
def test_oracle_model_files_through_the_h1_job_read_the_planted_answer(oracle_cfg, tmp_path, det_cells, expected):
    """The job's maps equal the closed form (unit norm), and H1 reads the planted answer."""
    from fst_ray import frames
    from fst_ray.hypotheses import pipeline
    from fst_ray.hypotheses.h1 import run_h1
    from fst_ray.models import load_model
    from fst_ray.models.oracle import exact_map
    from fst_ray.train.labels import class_sets

    classes = class_sets(frames.read_index(oracle_cfg.tables))
    # the target also weighs cell 3 a little: encoder maps of one cell each are both 1 there after the unit norm,
    # and tied top cells leave the official mask M_τ empty at every τ (a gap of exactly 0 whatever φ_d is)
    files = {"source": _oracle_file(tmp_path / "source.pt", "source", {0: 1.0}, list(classes["source_id"])),
             "target": _oracle_file(tmp_path / "target.pt", "target", {1: 1.0, 3: 0.5}, list(classes["target_id"])),
             "det": _oracle_file(tmp_path / "det.pt", "det", dict.fromkeys(det_cells, 1.0), None)}
    cfg = oracle_cfg.model_copy(update=dict(
        checkpoints={f"cell_oracle_g2/full/{r}": f for r, f in files.items()}, output=str(tmp_path / "h1")))
    result = run_h1(cfg)
    (reading,) = result.readings
    assert reading.verdict == expected, reading

    keys = [k for ks in pipeline.explained_keys(pipeline.resolve_compressions(cfg)).values() for k in ks]
    maps = pipeline.shapley_maps(pipeline.resolve_compressions(cfg), keys, [files["det"]])
    det, _ = load_model(files["det"])
    pixels = frames.images(cfg.tables, keys)
    for k in keys:
        image = frames.to_float(torch.from_numpy(pixels[k][None]))[0]
        exact = metrics.unit_norm(exact_map(det, image, torch.zeros_like(image), 1).numpy())
        assert np.allclose(maps[(k, pipeline.storage.canonical(files["det"]))], exact, atol=1e-4), k


def test_the_harness_counts_only_made_verdicts_and_every_scenario_is_a_valid_demo_config():
    """bench/known_answers.py: a verdict not made (not read, too noisy) never reads a planted answer, "not
    supports" admits inconclusive and contradicts only; each scenario's config is a demo config with its plant."""
    import importlib.util
    import sys
    from pathlib import Path

    import yaml

    from fst_ray.demo import DemoConfig

    spec = importlib.util.spec_from_file_location("known_answers", Path(__file__).parents[1] / "bench" /
                                                  "known_answers.py")
    harness = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = harness  # (its dataclasses look their module up there)
    spec.loader.exec_module(harness)
    m = harness.matches
    assert m("not supports", "inconclusive") and m("not supports", "contradicts")
    assert not any(m("not supports", v) for v in ("supports", "not read", "too noisy"))
    assert m("supports", "supports") and not m("supports", "too noisy") and not m("inconclusive", "not read")
    for name, scenario in harness.SCENARIOS.items():
        cfg = DemoConfig.model_validate(yaml.safe_load(harness.scenario_config(name)))
        assert cfg.synthetic.plant.model_dump(include=set(scenario.plant)) == scenario.plant
        assert set(scenario.expected) == set(scenario.why) <= {"H1", "H2", "H3"}
