"""The synthetic FF++ corpus: layout, codecs, masks, determinism, S3, and that the label is not trivially visible."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import decord
import numpy as np
import pytest

from fst_ray import ffpp, storage, video
from fst_ray.synth import capture, corpus
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus

SMALL = dict(identities=8, frames=6, size=64)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, ray_session):
    cfg = SynthConfig(output=str(tmp_path_factory.mktemp("synth") / "ffpp"), **SMALL)
    summary = generate_corpus(cfg)
    return cfg, summary


def _read_video(cfg: SynthConfig, method: str, compression: str, name: str) -> np.ndarray:
    data = storage.read_bytes(storage.join(cfg.output, ffpp.video_path(method, compression, name)))
    reader = decord.VideoReader(io.BytesIO(data))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def test_layout_and_naming(small_corpus):
    cfg, summary = small_corpus
    files = {p[len(cfg.output) + 1:] for p, _ in storage.list_files(cfg.output)}
    plan = corpus.plan_corpus(cfg)
    for vid in plan.ids:
        for c in ffpp.COMPRESSIONS:
            assert f"original_sequences/youtube/{c}/videos/{vid}.mp4" in files
        assert ffpp.landmarks_path(ffpp.ORIGINAL, vid) in files
    fakes = [rel for rel in files if rel.startswith("manipulated_sequences/") and "/raw/videos/" in rel]
    assert len(fakes) == cfg.identities * len(ffpp.METHODS) == summary.fakes
    for rel in fakes:
        ref = ffpp.parse_video_path(rel)
        assert ref.source_id != ref.target_id and ref.det_label == 1
        assert plan.partner[ref.source_id] == ref.target_id
        assert ffpp.mask_path(ref.method, ref.name) in files
        assert ffpp.landmarks_path(ref.method, ref.name) in files
        for c in ffpp.COMPRESSIONS:
            assert ffpp.video_path(ref.method, c, ref.name) in files
    assert "contact_sheet.png" in files and "synthetic.json" in files
    # no stray files: everything is a video, a mask, a sidecar, a split or the two documents
    assert all(rel.endswith((".mp4", ".json", ".png")) for rel in files)


def test_splits_are_identity_disjoint_ffpp_format(small_corpus):
    cfg, _ = small_corpus
    splits = {s: ffpp.splits_from_json(storage.read_bytes(storage.join(cfg.output, ffpp.split_path(s))))
              for s in ffpp.SPLITS}
    ids = {s: {i for pair in pairs for i in pair} for s, pairs in splits.items()}
    assert ids["train"] and ids["val"] and ids["test"]
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert set().union(*ids.values()) == {f"{i:03d}" for i in range(cfg.identities)}
    raw = json.loads(storage.read_bytes(storage.join(cfg.output, "splits/test.json")))
    assert all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in raw)


def test_videos_decode_with_decord_to_expected_shape(small_corpus):
    cfg, _ = small_corpus
    for method, name in [(ffpp.ORIGINAL, "000"), ("FaceSwap", _a_fake(cfg))]:
        for c in ffpp.COMPRESSIONS:
            frames = _read_video(cfg, method, c, name)
            assert frames.shape == (cfg.frames, cfg.size, cfg.size, 3)


def _a_fake(cfg: SynthConfig, source: str = "000") -> str:
    return ffpp.video_name(source, corpus.plan_corpus(cfg).partner[source])


def test_raw_is_lossless_and_compression_degrades_in_order(small_corpus):
    cfg, _ = small_corpus
    rendered = corpus.original_frames(cfg, "000").frames
    raw = _read_video(cfg, ffpp.ORIGINAL, "raw", "000")
    np.testing.assert_array_equal(raw, rendered)
    err = {c: np.abs(_read_video(cfg, ffpp.ORIGINAL, c, "000").astype(float) - rendered).mean() for c in ("c23", "c40")}
    assert 0 < err["c23"] < err["c40"]


def test_masks_cover_exactly_the_changed_pixels(small_corpus):
    cfg, _ = small_corpus
    name = _a_fake(cfg)
    source = _read_video(cfg, ffpp.ORIGINAL, "raw", "000")
    for method in ffpp.METHODS:
        fake = _read_video(cfg, method, "raw", name)
        mask_video = video.decode(storage.read_bytes(storage.join(cfg.output, ffpp.mask_path(method, name))))
        assert set(np.unique(mask_video)) <= {0, 255}
        mask = mask_video[..., 0] > 127
        changed = (fake != source).any(-1)
        np.testing.assert_array_equal(mask, changed, err_msg=method)
        share = mask.mean()
        assert 0.005 < share < 0.5, f"{method} changes {share:.1%} of the frame"


def test_landmark_sidecars_parse_and_sit_on_the_face(small_corpus):
    cfg, _ = small_corpus
    sidecar = ffpp.landmarks_from_json(storage.read_bytes(
        storage.join(cfg.output, ffpp.landmarks_path(ffpp.ORIGINAL, "000"))))
    boxes, lms = sidecar.boxes, sidecar.landmarks
    assert boxes.shape == (cfg.frames, 4) and lms.shape == (cfg.frames, 5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = lms.transpose(1, 0, 2)
    assert (left_eye[:, 0] < right_eye[:, 0]).all() and (mouth_l[:, 0] < mouth_r[:, 0]).all()
    assert (nose[:, 1] > left_eye[:, 1]).all() and (mouth_l[:, 1] > nose[:, 1]).all()
    inside = (lms[..., 0] > boxes[:, None, 0]) & (lms[..., 0] < boxes[:, None, 2]) \
        & (lms[..., 1] > boxes[:, None, 1]) & (lms[..., 1] < boxes[:, None, 3])
    assert inside.all()


def test_same_seed_same_bytes_other_seed_other_bytes(small_corpus, tmp_path):
    cfg, _ = small_corpus
    plan = corpus.plan_corpus(cfg)
    again = cfg.model_copy(update={"output": str(tmp_path / "again")})
    corpus.write_group(again, plan, "001")
    other = cfg.model_copy(update={"output": str(tmp_path / "other"), "seed": cfg.seed + 1})
    corpus.write_group(other, corpus.plan_corpus(other), "001")
    written = storage.list_files(again.output)
    assert len(written) == 3 + 1 + len(ffpp.METHODS) * 5
    for path, _ in written:
        rel = path[len(again.output) + 1:]
        assert storage.read_bytes(path) == storage.read_bytes(storage.join(cfg.output, rel)), rel
    rel = ffpp.video_path(ffpp.ORIGINAL, "raw", "001")
    assert storage.read_bytes(storage.join(other.output, rel)) != storage.read_bytes(storage.join(cfg.output, rel))


_WRITE_ALL = """
import sys
from fst_ray.synth import corpus
from fst_ray.synth.config import SynthConfig
cfg = SynthConfig.model_validate_json(sys.argv[1])
plan = corpus.plan_corpus(cfg)
corpus.write_metadata(cfg, plan, [corpus.write_group(cfg, plan, s) for s in plan.ids])
"""


@pytest.mark.slow
def test_same_seed_same_bytes_whoever_writes_it_and_whatever_the_heap_held(ray_session, tmp_path):
    """Every file, every compression: Ray's workers writing side by side give the bytes one process gives writing
    source after source, and two such processes whose fresh heap memory holds different bytes (glibc's
    MALLOC_PERTURB_) agree. x264's AVX-512 code read such memory at widths not a multiple of 128 px (64 here)."""
    cfg = SynthConfig(output=str(tmp_path / "ray"), identities=4, frames=16, size=64, contact_sheet=False)
    generate_corpus(cfg)
    outputs = [cfg.output]
    for perturb in (1, 170):
        other = cfg.model_copy(update={"output": str(tmp_path / f"heap{perturb}")})
        subprocess.run([sys.executable, "-c", _WRITE_ALL, other.model_dump_json()], check=True,
                       env={**os.environ, "MALLOC_PERTURB_": str(perturb)})
        outputs.append(other.output)

    def tree(root: str) -> dict[str, bytes]:
        files = {path[len(root) + 1:]: storage.read_bytes(path) for path, _ in storage.list_files(root)}
        meta = json.loads(files.pop("synthetic.json"))
        meta["config"].pop("output")
        files["synthetic.json"] = json.dumps(meta).encode()
        return files

    first, *others = [tree(root) for root in outputs]
    assert len(first) == 4 * (3 + 1) + 4 * len(ffpp.METHODS) * (3 + 1 + 1) + 3 + 1
    for root, files in zip(outputs[1:], others):
        assert files.keys() == first.keys()
        differ = sorted(rel for rel in first if files[rel] != first[rel])
        assert not differ, f"{root}: {len(differ)} of {len(first)} files differ from Ray's: {differ[:6]}"


def test_writes_to_s3_the_bytes_it_writes_locally(s3_bucket, ray_session, tmp_path):
    cfg = SynthConfig(output=f"{s3_bucket}/ffpp", identities=4, frames=16, size=64, methods=["Deepfakes"],
                      contact_sheet=False)
    summary = generate_corpus(cfg)
    files = storage.list_files(cfg.output)
    assert len(files) == summary.files + 3 + 1  # + splits and synthetic.json
    local = cfg.model_copy(update={"output": str(tmp_path / "ffpp")})
    generate_corpus(local)
    for path, _ in files:
        rel = path[len(cfg.output) + 1:]
        if rel != "synthetic.json":  # it records the output
            assert storage.read_bytes(path) == storage.read_bytes(storage.join(local.output, rel)), rel
    rel = ffpp.video_path("Deepfakes", "c23", _a_fake(cfg))
    reader = decord.VideoReader(io.BytesIO(storage.read_bytes(storage.join(cfg.output, rel))))
    assert len(reader) == 16 and reader[0].shape == (64, 64, 3)


def test_label_not_visible_in_whole_frame_colour_statistics(ray_session, tmp_path):
    """A logistic regression on per-frame colour statistics must separate real from fake poorly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cfg = SynthConfig(output=str(tmp_path / "lr"), identities=16, frames=4, size=64, contact_sheet=False)
    plan = corpus.plan_corpus(cfg)
    feats, labels, groups = [], [], []
    for source in plan.ids:
        for vid in corpus.group_videos(cfg, plan, source):
            x = vid.frames.reshape(cfg.frames, -1, 3).astype(float) / 255
            stats = np.concatenate([x.mean(1), x.std(1), np.percentile(x, [5, 25, 50, 75, 95], axis=1)
                                    .transpose(1, 0, 2).reshape(cfg.frames, -1)], axis=1)
            feats.append(stats)
            labels += [int(vid.method != ffpp.ORIGINAL)] * cfg.frames
            groups += [int(source)] * cfg.frames
    X, y = np.concatenate(feats), np.array(labels)
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    proba = cross_val_predict(model, X, y, groups=groups, cv=StratifiedGroupKFold(4), method="predict_proba")[:, 1]
    auc = roc_auc_score(y, proba)
    assert auc < 0.7, f"whole-frame colour statistics give away the label (AUC {auc:.2f})"


def _face_sharpness(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean |Laplacian| of the grey face box of each frame ``[T, S, S, 3]`` uint8 (high: sharp or noisy)."""
    from scipy import ndimage

    out = []
    for f, box in zip(frames, boxes.astype(int)):
        lap = np.abs(ndimage.laplace(f.astype(float).mean(-1) / 255))
        out.append(lap[max(box[1], 0):box[3], max(box[0], 0):box[2]].mean())
    return np.array(out)


def test_original_captures_are_drawn_per_video_recorded_and_deterministic(small_corpus):
    """Every original draws one capture (fst_ray.synth.capture) from the seed and its id alone, and
    synthetic.json records each; over many ids every kind occurs."""
    cfg, _ = small_corpus
    meta = json.loads(storage.read_bytes(storage.join(cfg.output, "synthetic.json")))
    plan = corpus.plan_corpus(cfg)
    assert set(meta["captures"]) == set(plan.ids)
    assert meta["captures"] == {v: corpus.capture(cfg, v).as_dict() for v in plan.ids}
    many = cfg.model_copy(update={"identities": 60})
    kinds = [corpus.capture(many, f"{i:03d}").kind for i in range(60)]
    assert set(kinds) == set(capture.CAPTURES)
    assert [corpus.capture(cfg.model_copy(update={"seed": 1}), f"{i:03d}") for i in range(8)] != \
        [corpus.capture(cfg, f"{i:03d}") for i in range(8)]


def test_each_capture_changes_the_original_as_named_and_fakes_keep_their_artifacts():
    """On the same scene: defocus, motion blur and a phone's denoiser make the face less sharp than the sharp
    capture, low light makes it darker and noisier; under every capture each fake still differs from its
    source inside its region (the planted artifacts are added after the capture's optics)."""
    base = dict(output="/unused", identities=4, frames=2, size=64, contact_sheet=False)
    look = {}
    for kind in capture.CAPTURES:
        cfg = SynthConfig(**base, captures=[kind])
        plan = corpus.plan_corpus(cfg)
        videos = list(corpus.group_videos(cfg, plan, "001"))
        original = videos[0]
        look[kind] = (_face_sharpness(original.frames, original.boxes).mean(), original.frames.mean())
        for fake in videos[1:]:
            assert fake.masks.mean() > 0.01, (kind, fake.method)
    for kind in ("defocus", "motion", "denoised"):
        assert look[kind][0] < 0.8 * look["sharp"][0], (kind, look)
    assert look["low_light"][1] < 0.75 * look["sharp"][1]


def test_sharpness_alone_tells_real_from_fake_less_when_originals_vary():
    """With every original sharp and noisy, a face's sharpness alone separates real from fake (fakes are
    blended smoother); with the spread of captures it separates them much less (AUC of 'less sharp = fake')."""
    from sklearn.metrics import roc_auc_score

    auc = {}
    for kinds in (["sharp"], list(capture.CAPTURES)):
        cfg = SynthConfig(output="/unused", identities=16, frames=4, size=64, contact_sheet=False, captures=kinds)
        plan = corpus.plan_corpus(cfg)
        sharpness, fake = [], []
        for source in plan.ids:
            for vid in corpus.group_videos(cfg, plan, source):
                sharpness += list(_face_sharpness(vid.frames, vid.boxes))
                fake += [vid.method != ffpp.ORIGINAL] * cfg.frames
        auc[len(kinds)] = roc_auc_score(fake, -np.array(sharpness))
    assert auc[1] > 0.75 and auc[len(capture.CAPTURES)] < auc[1] - 0.1, auc


def _planted(region: str, pattern: str, **over) -> tuple[SynthConfig, corpus.GeneratedVideo, corpus.GeneratedVideo]:
    cfg = SynthConfig(**{**dict(output="/unused", identities=4, frames=3, size=96, methods=["Deepfakes"],
                             contact_sheet=False, plant={"region": region, "pattern": pattern}), **over})
    original, fake = corpus.group_videos(cfg, corpus.plan_corpus(cfg), "001")
    return cfg, original, fake


@pytest.mark.parametrize("region", ["seam", "features", "frame", "patch"])
def test_a_plant_is_the_only_evidence_where_it_is_planted_deterministic_and_recorded(region):
    """With synthetic.plant, a fake differs from its original by the plant's strength inside the plant (its
    mask) and, outside it, only by the clean swap (far less: the face is captured and colour-matched as the
    original); the same seed gives the same pixels; the fake's artifacts record the plant."""
    cfg, original, fake = _planted(region, "fine")
    diff = np.abs(fake.frames.astype(float) - original.frames.astype(float)).mean(-1) / 255
    inside, outside = diff[fake.masks], diff[~fake.masks]
    assert inside.mean() > 0.3 * cfg.plant.strength, inside.mean()  # the stripes: |sin| at pixels is 1 or 0
    if outside.size:
        assert outside.mean() < 0.25 * inside.mean(), (outside.mean(), inside.mean())
    share = {"seam": (0.01, 0.15), "features": (0.003, 0.05), "frame": (1.0, 1.0), "patch": (0.003, 0.05)}[region]
    assert share[0] <= fake.masks.mean() <= share[1], fake.masks.mean()
    again = _planted(region, "fine")[2]
    assert np.array_equal(again.frames, fake.frames)
    spot = {"spot": fake.artifacts["spot"]} if region == "patch" else {}
    assert fake.artifacts == {**cfg.plant.model_dump(), **spot}


def test_a_patch_sits_at_its_own_spot_of_the_aligned_crop_whatever_the_face():
    """The patch null: in the aligned crop (the landmarks the corpus records, fst-ray's default alignment) every
    frame's patch is centred on its video's recorded spot, and the spots of different videos are spread over the
    crop, drawn apart from the faces."""
    from fst_ray.data.align import align_face

    cfg = SynthConfig(output="/unused", identities=12, frames=3, size=96, methods=["Deepfakes"], contact_sheet=False,
                      plant={"region": "patch", "pattern": "fine"})
    plan = corpus.plan_corpus(cfg)
    spots = []
    for source in sorted(plan.partner)[:6]:
        fake = list(corpus.group_videos(cfg, plan, source))[1]
        spot = np.array(fake.artifacts["spot"])
        for frame, lm, mask in zip(fake.frames, fake.landmarks, fake.masks):
            _, crop = align_face(frame, lm, 64, mask=mask.astype(np.uint8) * 255)
            ys, xs = np.nonzero(crop > 127)
            assert len(xs) > 20
            assert np.allclose([xs.mean() / 64, ys.mean() / 64], spot, atol=0.04), (xs.mean() / 64, spot)
        spots.append(spot)
    spots = np.array(spots)
    assert spots.min() >= cfg.plant.patch and spots.max() <= 1 - cfg.plant.patch
    assert spots.std(0).min() > 0.1, spots  # spread over the crop, not following the face


def test_a_fine_plant_does_not_survive_c40_and_coarse_ones_do():
    """What the H3 scenarios rest on: after H.264 at c40 the period-4 stripes are mostly gone from their mask,
    while the smooth colour cast keeps most of its mean shift and the blotches most of their grid."""
    from fst_ray.synth.plant import plant_pattern

    kept = {}
    for pattern in ("fine", "coarse", "blotches"):  # over the frame: the swapped face is a small share of it
        cfg, original, fake = _planted("frame", pattern, frames=8)
        m = fake.masks[..., None]
        for c in ("raw", "c40"):
            o = video.decode(video.encode(original.frames, c)).astype(float) / 255
            f = video.decode(video.encode(fake.frames, c)).astype(float) / 255
            d = f - o
            p = plant_pattern(cfg.plant, cfg.size)[None]  # the pattern's component in the mask
            kept[(pattern, c)] = float(np.abs((d * p * m).sum() / (p * p * m).sum()))
    assert kept[("fine", "c40")] < 0.3 * kept[("fine", "raw")], kept
    assert kept[("coarse", "c40")] > 0.6 * kept[("coarse", "raw")], kept
    assert kept[("blotches", "c40")] > 0.5 * kept[("blotches", "raw")], kept


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        SynthConfig(methods=["Deepfake"])
    with pytest.raises(ValueError):
        SynthConfig(identities=7)
    with pytest.raises(ValueError):
        SynthConfig(size=100)
    with pytest.raises(ValueError):
        SynthConfig.model_validate({"identites": 4})
    with pytest.raises(ValueError):
        SynthConfig(captures=["foggy"])
    with pytest.raises(ValueError):
        SynthConfig(captures=[])


def test_a_corpus_recorded_before_a_field_existed_is_still_current(tmp_path):
    """The demo regenerates a corpus (deleting its frames, models and maps) only when its config differs: a field
    an older synthetic.json did not record counts as its default, which made the same pixels."""
    from fst_ray.demo import _corpus_is_current

    cfg = SynthConfig(output=str(tmp_path))
    recorded = cfg.model_dump(mode="json")
    del recorded["plant"]
    (tmp_path / "synthetic.json").write_text(json.dumps({"config": recorded}))
    assert _corpus_is_current(cfg)
    assert not _corpus_is_current(cfg.model_copy(update={"seed": 1}))
    assert not _corpus_is_current(cfg.model_copy(update={"plant": {"region": "seam", "pattern": "fine"}}))
