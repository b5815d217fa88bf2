"""jobs/shapley.py end to end on a toy frames table and tiny timm encoders: rows, resume, no duplicates."""

import os

import pyarrow.dataset as pads
import pytest
import torch

from fst_ray import frames, storage, tables
from fst_ray.data import views
from fst_ray.models import create_model, load_model, save_model
from fst_ray.shapley import ImageGame, estimate
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.roles import explained_class
from fst_ray.shapley.run import image_seed, run_shapley
from fst_ray.frames import decode as decode_images
from fst_ray.frames import resize, to_float
from fst_ray.train.toy import write_toy_frames

CLASSES = ["000", "001", "002", "003"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapley_job")
    data = str(root / "prepared")
    write_toy_frames(data, identities=4, frames=2, size=32, compressions=("raw",))
    models = {}
    for role in ("det", "source", "target"):
        n = 2 if role == "det" else len(CLASSES)
        uri = str(root / "models" / f"{role}.pt")
        save_model(uri, create_model(role, "test_resnet", n), role=role, arch="test_resnet", num_classes=n,
                   classes=None if role == "det" else CLASSES, metadata={"image_size": 24})
        models[role] = uri
    return root, data, models


def read(output: str):
    fs, path = storage.resolve(output)
    return pads.dataset(path, filesystem=fs, format="parquet", schema=tables.SHAPLEY).to_table().sort_by(
        [("key", "ascending"), ("model", "ascending")])


def test_explained_class():
    fake = {"det_label": 1, "source_id": "000", "target_id": "001"}
    assert explained_class("det", None, fake) == ("fake", 1)
    assert explained_class("fst", None, {**fake, "det_label": 0}) == ("real", 0)
    assert explained_class("source", CLASSES, fake) == ("000", 0)
    assert explained_class("target", CLASSES, fake) == ("001", 1)
    assert explained_class("target", ["000"], fake) is None
    assert image_seed(0, "a") == image_seed(0, "a") != image_seed(1, "a")


@pytest.mark.slow
def test_job_writes_maps_resumes_and_never_duplicates(ray_session, workspace):
    root, data, models = workspace
    output = str(root / "shapley")
    base = dict(input=data, output=output, split="test", grid=4, budget=120, estimator="leverage", seed=3,
                max_images=3, actors=1, actor_cpus=1, chunk_size=32, flush_images=1)
    # first the detector alone, then all three: only the encoders' maps are new
    first = run_shapley(ShapleyConfig(models=[models["det"]], **base), progress=False)
    assert (first.images, first.maps, first.skipped) == (3, 3, 0)
    cfg = ShapleyConfig.load(None, models=",".join(models.values()), **base)
    second = run_shapley(cfg, progress=False)
    assert (second.maps, second.skipped) == (6, 3) and second.forward_passes == second.evaluations <= 6 * 120
    table = read(output)
    assert table.num_rows == 9
    assert len(set(zip(table["key"].to_pylist(), table["model"].to_pylist()))) == 9
    assert set(table["role"].to_pylist()) == {"det", "source", "target"}
    assert all(len(p) == 16 for p in table["phi"].to_pylist())
    assert max(table["n_evals"].to_pylist()) <= 120 and set(table["estimator"].to_pylist()) == {"leverage"}
    # each map's coalitions have a seed of their own, from the image and the model's content (independent noise)
    assert table["seed"].to_pylist() == [image_seed(3, f"{k}/{m}") for k, m in
                                         zip(table["key"].to_pylist(), table["model_sha256"].to_pylist())]
    assert len(set(table["seed"].to_pylist())) == 9

    # one map recomputed locally from the stored seed: the pool changed nothing
    row = {k: v[0] for k, v in table.slice(0, 1).to_pydict().items()}
    frame = views.read_table(data, "frames", None, frames.keys_filter([row["key"]])).to_pylist()[0]
    image = to_float(torch.from_numpy(decode_images([frame["image"]])))[0]
    model, _ = load_model(row["model"])
    game = ImageGame(torch.nn.Sequential(ResizeTo(24), model), image, row["class_index"], grid=4, batch_size=32)
    # the map is the mean of two independent halves of the budget, the second with a seed of its own
    half_a = estimate(game, 60, "leverage", seed=row["seed"])
    half_b = estimate(game, 60, "leverage", seed=image_seed(row["seed"], "b"))
    assert torch.allclose(half_a.values.float(), torch.tensor(row["phi_a"]), rtol=1e-4, atol=1e-6)
    assert torch.allclose(half_b.values.float(), torch.tensor(row["phi_b"]), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(half_a.values, half_b.values)
    assert torch.allclose(((half_a.values + half_b.values) / 2).float(), torch.tensor(row["phi"]), rtol=1e-4,
                          atol=1e-6)

    # a re-run does nothing; a lost file is redone, with the same values
    again = run_shapley(cfg, progress=False)
    assert (again.maps, again.skipped) == (0, 9)
    lost = second.files[0]
    before = read(output)
    os.remove(lost)
    redo = run_shapley(cfg, progress=False)
    assert redo.maps == 2 and redo.skipped == 7  # that image's source and target maps
    after = read(output)
    assert after.num_rows == 9
    assert after["phi"].to_pylist() == before["phi"].to_pylist()


class ResizeTo(torch.nn.Module):
    """What the job puts in front of a model trained at another size."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x):
        return resize(x, self.size)


@pytest.mark.slow
def test_source_baseline_is_the_fakes_own_source_frame(ray_session, workspace):
    """baseline=source: a fake's all-baseline image is its source's real frame (same frame index, compression),
    so the recorded all-baseline value is the model's logit on that frame; reals are not explained."""
    root, data, models = workspace
    output = str(root / "shapley-source")
    cfg = ShapleyConfig(input=data, models=[models["det"], models["target"]], output=output, split=None, grid=2,
                        budget=32, estimator="exact", baseline="source", actors=1, chunk_size=32)  # halves exact
    summary = run_shapley(cfg, progress=False)
    table = read(output).to_pylist()
    index = frames.read_index(data).to_pylist()
    fakes = [r for r in index if r["det_label"] == 1]
    assert summary.images == len(fakes) and {r["key"] for r in table} == {r["key"] for r in fakes}
    assert summary.no_baseline == len(index) - len(fakes) and summary.unexplainable == 0
    rows = {r["key"]: r for r in index}
    modules = {m: load_model(models[m])[0].eval() for m in ("det", "target")}
    for r in table:
        row = rows[r["key"]]
        source = frames.key("original", row["compression"], row["source_id"], row["frame_index"])
        pixels = frames.images(data, [source, r["key"]])
        role = "det" if r["role"] == "det" else "target"
        with torch.no_grad():
            logits = [modules[role](resize(to_float(torch.from_numpy(pixels[k][None])), 24))[0] for k in
                      (source, r["key"])]
        assert r["baseline"] == "source"
        assert r["value_empty"] == pytest.approx(float(logits[0][r["class_index"]]), abs=1e-4)
        assert r["value_full"] == pytest.approx(float(logits[1][r["class_index"]]), abs=1e-4)
        p = torch.softmax(logits[0].double(), 0)[r["class_index"]]
        assert r["p_empty"] == pytest.approx(float(p), abs=1e-5)
        # exact maps: efficiency, Σφ = v(whole) − v(all-baseline)
        assert sum(r["phi"]) == pytest.approx(r["value_full"] - r["value_empty"], abs=1e-3)
        assert len(r["deletion"]) == len(r["insertion_random"]) == 5  # grid 2: every cell a step
        assert r["deletion"][0] == pytest.approx(r["value_full"], abs=1e-4)
        assert r["insertion"][0] == pytest.approx(r["value_empty"], abs=1e-4)


def test_background_keys_are_other_peoples_real_frames_of_the_same_split_and_compression():
    import pyarrow as pa

    from fst_ray.shapley.baselines import background_keys

    rows = [{"key": f"original/{c}/{i:03d}/{t:05d}", "det_label": 0, "split": s, "compression": c,
             "source_id": f"{i:03d}", "target_id": f"{i:03d}"}
            for i, s in zip(range(10), ["test"] * 8 + ["train"] * 2) for c in ("raw", "c40") for t in range(3)]
    index = pa.Table.from_pylist(rows)
    fake = {"key": "FaceSwap/raw/000_001/00002", "det_label": 1, "split": "test", "compression": "raw",
            "source_id": "000", "target_id": "001"}
    got = background_keys(index, [fake, rows[0]], 4, seed=0)
    for chosen, row in zip(got.values(), (fake, rows[0])):
        ids = [frames.split_key(k)[2] for k in chosen]
        assert len(chosen) == 4 and len(set(ids)) == 4
        assert not {row["source_id"], row["target_id"]} & set(ids) and all(i < "008" for i in ids)  # test split
        assert all(frames.split_key(k)[:2] == ("original", "raw") for k in chosen)
    assert background_keys(index, [fake], 4, seed=0) == {fake["key"]: got[fake["key"]]}  # deterministic
    assert len(background_keys(index, [fake], 9, seed=0)[fake["key"]]) == 6  # as many as there are
    assert background_keys(index, [fake], 4, seed=1) != {fake["key"]: got[fake["key"]]}


def test_background_keys_leave_out_every_video_of_the_source_and_target_people():
    """Celeb-DF and DFD name a person by several videos (id1_0, id1_1): none of the source's or the target's
    person is another person's background."""
    import pyarrow as pa

    from fst_ray.shapley.baselines import background_keys

    people = {"id1_0": "id1", "id1_1": "id1", "id2_0": "id2", "id2_1": "id2", "id3_0": "id3", "id4_0": "id4"}
    index = pa.Table.from_pylist([{"key": f"original/raw/{v}/00000", "det_label": 0, "split": "test",
                                   "compression": "raw", "source_id": v, "target_id": p} for v, p in people.items()])
    fake = {"key": "Celeb-synthesis/raw/id1_id2_0000/00000", "det_label": 1, "split": "test", "compression": "raw",
            "source_id": "id1_0", "target_id": "id2"}
    real = index.to_pylist()[0]  # id1_0: its person's other video is not someone else
    got = background_keys(index, [fake, real], 9, seed=0)
    assert sorted(frames.split_key(k)[2] for k in got[fake["key"]]) == ["id3_0", "id4_0"]
    assert sorted(frames.split_key(k)[2] for k in got[real["key"]]) == ["id2_0", "id2_1", "id3_0", "id4_0"]


def test_background_raw_gives_every_compression_of_a_frame_the_backgrounds_of_its_raw_frame(tmp_path):
    """The same removal at raw, c23 and c40, as the paper's black image is: the raw real frames `background`
    draws for the raw frame."""
    from fst_ray.shapley import baselines

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=6, frames=2, size=16, compressions=("raw", "c23", "c40"))
    index = frames.read_index(data).to_pylist()
    fake = next(r for r in index if r["det_label"] == 1 and r["compression"] == "raw")
    same = [r for r in index if r["key"] in frames.same_frame_keys(fake["key"]).values()]
    assert len(same) == 3
    got = baselines.get("background_raw").others(data, same, 2, 0)
    at_raw = baselines.get("background").others(data, [fake], 2, 0)[fake["key"]]
    assert len(at_raw) == 2 and all(frames.split_key(k)[1] == "raw" for k in at_raw)
    assert all(got[r["key"]] == at_raw for r in same)
    c40 = next(r for r in same if r["compression"] == "c40")  # `background` takes c40 frames for a c40 row
    assert all(frames.split_key(k)[1] == "c40" for k in baselines.get("background").others(data, [c40], 2, 0)[c40["key"]])


@pytest.mark.slow
def test_background_baseline_fills_removed_cells_with_other_peoples_real_frames(ray_session, workspace):
    """baseline=background: the all-baseline value is the mean of the model's values on its K backgrounds (here
    the toy split holds one other person per real, so K = 1); images with no other person are not explained."""
    root, data, models = workspace
    output = str(root / "shapley-background")
    cfg = ShapleyConfig(input=data, models=[models["det"]], output=output, split=None, grid=2, budget=32,
                        estimator="exact", baseline="background", backgrounds=3, actors=1, chunk_size=32)
    summary = run_shapley(cfg, progress=False)
    index = frames.read_index(data).to_pylist()
    reals = [r for r in index if r["det_label"] == 0]
    assert summary.images == len(reals) and summary.no_baseline == len(index) - len(reals)
    module = load_model(models["det"])[0].eval()
    for r in read(output).to_pylist():
        row = next(x for x in index if x["key"] == r["key"])
        other = next(x for x in reals if x["split"] == row["split"] and x["source_id"] != row["source_id"])
        candidates = [x["key"] for x in reals if x["source_id"] == other["source_id"]]
        pixels = frames.images(data, candidates)
        with torch.no_grad():
            values = [float(module(resize(to_float(torch.from_numpy(pixels[k][None])), 24))[0, r["class_index"]])
                      for k in candidates]
        assert r["baseline"] == "background"
        assert any(r["value_empty"] == pytest.approx(v, abs=1e-4) for v in values)
        assert sum(r["phi"]) == pytest.approx(r["value_full"] - r["value_empty"], abs=1e-3)


def test_a_selection_of_nothing_is_a_users_mistake(ray_session, workspace):
    from fst_ray.config import UserError

    root, data, models = workspace
    cfg = ShapleyConfig(input=data, models=[models["det"]], output=str(root / "nothing"), split="test",
                        compressions=["c40"], grid=2, budget=32, estimator="exact", actors=1)  # the toy has raw only
    with pytest.raises(UserError, match="nothing to explain"):
        run_shapley(cfg, progress=False)
    assert not os.path.exists(root / "nothing")


@pytest.mark.slow
def test_maps_without_curves(ray_session, workspace):
    """curve_steps=0 records no deletion/insertion curves (null), everything else as usual."""
    root, data, models = workspace
    output = str(root / "no-curves")
    run_shapley(ShapleyConfig(input=data, models=[models["det"]], output=output, split="test", grid=2, budget=32,
                              estimator="exact", curve_steps=0, max_images=2, actors=1), progress=False)
    rows = read(output).to_pylist()
    assert len(rows) == 2 and all(r["deletion"] is None and r["p_empty"] is not None for r in rows)


@pytest.mark.slow
def test_maps_to_a_target_ceiling_store_their_ceiling_budget_and_cap(ray_session, workspace):
    """explain.target_ceiling: each map takes rounds of `budget` until its ceiling reaches the target or the cap;
    the table records what each spent and reached, and which stopped at the cap."""
    root, data, models = workspace
    output = str(root / "to-a-ceiling")
    base = dict(input=data, models=[models["source"], models["det"]], split="test", grid=3, budget=40,
                estimator="permutation", curve_steps=0, max_images=3, actors=1)
    fixed = str(root / "fixed-budget")
    run_shapley(ShapleyConfig(output=fixed, **base), progress=False)
    one_round = {r["n_evals"] for r in read(fixed).to_pylist()}  # what `budget` buys this estimator here
    assert len(one_round) == 1 and all(r["capped"] is None and 0 <= r["ceiling"] <= 1 for r in read(fixed).to_pylist())
    per_round = one_round.pop()
    summary = run_shapley(ShapleyConfig(output=output, target_ceiling=0.95, max_budget=200, **base), progress=False)
    rows = read(output).to_pylist()
    assert len(rows) == summary.maps > 0 and summary.capped == sum(r["capped"] for r in rows)
    for r in rows:
        rounds = r["n_evals"] // per_round
        assert r["n_evals"] == rounds * per_round and 1 <= rounds <= 200 // 40
        assert r["capped"] == (r["ceiling"] < 0.95) and (rounds == 200 // 40 or not r["capped"])


@pytest.mark.slow
def test_a_model_is_known_by_its_content_and_other_settings_are_refused(ray_session, workspace, tmp_path):
    """The map cache keys a model by its file's content: the same file under another path (relative, or a copy)
    adds no row; a run asking other settings of an output that holds maps is refused, naming the setting."""
    import shutil

    from fst_ray.config import UserError

    root, data, models = workspace
    output = str(tmp_path / "shapley")
    base = dict(input=data, output=output, split="test", grid=4, budget=120, estimator="leverage", seed=3,
                max_images=2, actors=1, actor_cpus=1, chunk_size=32)
    first = run_shapley(ShapleyConfig(models=[models["det"]], **base), progress=False)
    assert first.maps == 2
    copy = tmp_path / "elsewhere" / "det.pt"
    copy.parent.mkdir()
    shutil.copy(models["det"], copy)
    again = run_shapley(ShapleyConfig(models=[os.path.relpath(copy), models["det"]], **base), progress=False)
    assert (again.maps, again.skipped) == (0, 2)
    table = read(output)
    assert table.num_rows == 2 and set(table["model_sha256"].to_pylist()) == {storage.digest(models["det"])}
    with pytest.raises(UserError, match="budget: 120 there, 400 here; .*grid: 4 there, 8 here"):
        run_shapley(ShapleyConfig(models=[models["det"]], **{**base, "grid": 8, "budget": 400}), progress=False)
    with pytest.raises(UserError, match="baseline"):
        run_shapley(ShapleyConfig(models=[models["det"]], **{**base, "baseline": "mean"}), progress=False)
    assert read(output).num_rows == 2


def test_how_the_actors_run_the_models_keys_the_map_cache_only_when_not_the_default(tmp_path):
    """A map made in bf16, channels_last or compiled is keyed apart; maps made before these settings existed
    (fp32, the default) keep their key."""
    from fst_ray.shapley.run import cache_params

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=4, frames=1, size=16, compressions=("raw",))
    base = dict(input=data, models=["m.pt"], output=str(tmp_path / "maps"), grid=2, budget=32)
    default = cache_params(ShapleyConfig(**base))
    assert not {"precision", "channels_last", "compile"} & set(default)
    for change in ({"precision": "bf16"}, {"precision": "fp16"}, {"channels_last": True}, {"compile": True}):
        assert cache_params(ShapleyConfig(**base, **change)) == {**default, **change}


def test_a_target_ceiling_needs_shapley_halves_and_a_cap_of_at_least_one_round(tmp_path):
    base = dict(input=str(tmp_path), models=["m.pt"], output=str(tmp_path / "maps"), grid=2, budget=32)
    assert ShapleyConfig(**base, target_ceiling=0.9).max_budget == 8 * 32
    assert ShapleyConfig(**base, value="probability").target_ceiling is None  # other values stay open to Shapley
    for wrong in ({"halves": False}, {"attribution": "occlusion"}, {"max_budget": 16}):
        with pytest.raises(ValueError):
            ShapleyConfig(**base, target_ceiling=0.9, **wrong)
    with pytest.raises(ValueError, match="value must be logit"):
        ShapleyConfig(**base, attribution="occlusion", value="probability")
