"""The synthetic FF++-shaped corpus: planning, per-video generation, writing, and the contact sheet.

Everything here is plain Python/numpy; :mod:`fst_ray.synth.generate` spreads :func:`write_group` over
Ray tasks. Determinism: every random draw comes from ``numpy.random.default_rng([seed, tag, ...])``
with integer tags, so a seed gives the same pixels (and, encoding single-threaded, the same bytes)
whatever runs it and in whatever order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fst_ray import datasets, ffpp, storage, video
from fst_ray.synth import methods as synth_methods
from fst_ray.synth.capture import CAPTURE_RANGES, Capture, optics, sample_capture, sensor
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.plant import patch_spot, planted_fake_frame
from fst_ray.synth.render import Canvas, Identity, Scene, landmarks, pose_at, render_frame, sample_identity, \
    sample_scene

# integer tags of the random streams
_IDENTITY, _SCENE, _NOISE, _ARTIFACTS, _JITTER, _PAIRING, _CAPTURE, _PATCH = range(1, 9)


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([seed, *tags])


@dataclass(frozen=True)
class CorpusPlan:
    """Which originals exist, how they pair into fakes, and the identity-disjoint splits."""

    ids: list[str]
    splits: dict[str, list[tuple[str, str]]]

    @property
    def partner(self) -> dict[str, str]:
        """Each id's pair partner: fake ``A_B`` exists for ``B = partner[A]`` (and ``B_A``)."""
        out = {}
        for pairs in self.splits.values():
            for a, b in pairs:
                out[a], out[b] = b, a
        return out


def plan_corpus(cfg: SynthConfig) -> CorpusPlan:
    """Pair the identities at random and split the pairs train/val/test by ``cfg.split_fractions``.

    With at least 2 pairs the test split gets one, with at least 3 the val split too."""
    ids = [f"{i:03d}" for i in range(cfg.identities)]
    order = _rng(cfg.seed, _PAIRING).permutation(len(ids))
    pairs = [(ids[order[2 * k]], ids[order[2 * k + 1]]) for k in range(len(ids) // 2)]
    n = len(pairs)
    n_test = max(int(round(cfg.split_fractions[2] * n)), 1 if n >= 2 else 0)
    n_val = max(int(round(cfg.split_fractions[1] * n)), 1 if n >= 3 else 0)
    n_train = n - n_test - n_val
    splits = {"train": pairs[:n_train], "val": pairs[n_train:n_train + n_val], "test": pairs[n_train + n_val:]}
    return CorpusPlan(ids=ids, splits=splits)


def identity(cfg: SynthConfig, vid: str) -> Identity:
    return sample_identity(_rng(cfg.seed, _IDENTITY, int(vid)))


def scene(cfg: SynthConfig, vid: str) -> Scene:
    return sample_scene(_rng(cfg.seed, _SCENE, int(vid)), cfg.frames, cfg.size, cfg.fps)


def capture(cfg: SynthConfig, vid: str) -> Capture:
    """How original ``vid`` was captured (:mod:`fst_ray.synth.capture`), one of ``cfg.captures``."""
    return sample_capture(cfg.captures, cfg.size, _rng(cfg.seed, _CAPTURE, int(vid)))


@dataclass
class GeneratedVideo:
    """One rendered video before encoding."""

    method: str
    name: str
    frames: np.ndarray  # uint8 [T, S, S, 3]
    boxes: np.ndarray  # [T, 4]
    landmarks: np.ndarray  # [T, 5, 2]
    masks: np.ndarray | None = None  # bool [T, S, S], fakes only
    artifacts: dict[str, float | str] = field(default_factory=dict)  # the method's strengths, or the plant


def _quantise(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def original_frames(cfg: SynthConfig, vid: str, canvas: Canvas | None = None) -> GeneratedVideo:
    """Original video ``vid``: rendered frames as its capture records them (optics, then sensor)."""
    canvas = canvas or Canvas(cfg.size)
    person, sc, cap = identity(cfg, vid), scene(cfg, vid), capture(cfg, vid)
    noise = _rng(cfg.seed, _NOISE, int(vid))
    frames, boxes, lms = [], [], []
    for t in range(cfg.frames):
        img = sensor(optics(render_frame(canvas, sc, person, person, t), cap), cap, sc.noise_sigma, noise)
        frames.append(_quantise(img))
        lm, box = landmarks(person, sc.expression.at(t), pose_at(sc, t))
        lms.append(lm)
        boxes.append(box)
    return GeneratedVideo(ffpp.ORIGINAL, vid, np.stack(frames), np.stack(boxes), np.stack(lms))


def fake_frames(cfg: SynthConfig, method: str, original: GeneratedVideo, target: str,
                canvas: Canvas | None = None) -> GeneratedVideo:
    """Fake ``A_B`` made by ``method`` from original A's frames and target B (with ``cfg.plant``: made clean, the
    plant its only evidence; its artifacts record the plant)."""
    canvas = canvas or Canvas(cfg.size)
    source = original.name
    id_a, id_b = identity(cfg, source), identity(cfg, target)
    sc_a, sc_b = scene(cfg, source), scene(cfg, target)
    m_idx = ffpp.METHODS.index(method)
    params = synth_methods.sample_artifacts(method, _rng(cfg.seed, _ARTIFACTS, m_idx, int(source), int(target)))
    jitter = _rng(cfg.seed, _JITTER, m_idx, int(source), int(target))
    cap = capture(cfg, source)
    spot = None
    if cfg.plant is not None:
        params = cfg.plant.model_dump()
        if cfg.plant.region == "patch":  # where this video's patch sits, recorded with its artifacts
            spot = patch_spot(cfg.plant, _rng(cfg.seed, _PATCH, m_idx, int(source), int(target)))
            params["spot"] = list(spot)
    frames, masks, boxes, lms = [], [], [], []
    for t in range(cfg.frames):
        src = original.frames[t].astype(np.float32) / 255.0
        if cfg.plant is None:
            fake = _quantise(synth_methods.make_fake_frame(method, canvas, sc_a, sc_b, id_a, id_b, t, src, params,
                                                           jitter, cap))
            mask = (fake != original.frames[t]).any(-1)
        else:  # a known answer: the evidence is the plant, and so is the mask
            frame, cover = planted_fake_frame(cfg.plant, method, canvas, sc_a, sc_b, id_a, id_b, t, src, cap, jitter,
                                               spot)
            fake, mask = _quantise(frame), cover > 0.5
        frames.append(fake)
        masks.append(mask)
        face, expr = synth_methods.drawn(method, sc_a, sc_b, id_a, id_b, t)
        lm, box = landmarks(face, expr or sc_a.expression.at(t), pose_at(sc_a, t))
        lms.append(lm)
        boxes.append(box)
    return GeneratedVideo(method, ffpp.video_name(source, target), np.stack(frames), np.stack(boxes),
                          np.stack(lms), np.stack(masks), params)


def group_videos(cfg: SynthConfig, plan: CorpusPlan, source: str) -> Iterator[GeneratedVideo]:
    """Original ``source`` then, if it has a partner B, every method's fake ``source_B``, one at a time."""
    canvas = Canvas(cfg.size)
    original = original_frames(cfg, source, canvas)
    yield original
    target = plan.partner[source]
    for method in cfg.methods:
        yield fake_frames(cfg, method, original, target, canvas)


@dataclass
class GroupResult:
    """What writing one source's videos produced."""

    source: str
    files: int = 0
    bytes: int = 0
    artifacts: dict[str, dict[str, float]] = field(default_factory=dict)  # "method/A_B" -> params
    previews: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> panel -> image


def write_group(cfg: SynthConfig, plan: CorpusPlan, source: str, preview: bool = False) -> GroupResult:
    """Encode and write original ``source`` and its fakes, all compressions, masks and landmark sidecars.

    With ``preview`` (or always for the original), keep the middle frame of each video, its mask and its
    c40 decode for the contact sheet."""
    result = GroupResult(source)
    mid = cfg.frames // 2
    layout = datasets.get_layout(cfg.layout)
    for vid in group_videos(cfg, plan, source):
        method, name = layout_name(cfg, vid.method, vid.name)
        outputs = {layout.video_path(method, c, name): video.encode(vid.frames, c, cfg.fps, cfg.keyframe_interval)
                   for c in cfg.compressions}
        if vid.masks is not None:
            result.artifacts[f"{vid.method}/{vid.name}"] = vid.artifacts
            if layout.mask_path(method, name) is not None:
                outputs[layout.mask_path(method, name)] = video.encode_mask(vid.masks, cfg.fps, cfg.keyframe_interval)
        outputs[layout.landmarks_path(method, name)] = ffpp.landmarks_to_json(
            name, vid.boxes, vid.landmarks, (cfg.size, cfg.size)).encode()
        for rel, data in outputs.items():
            storage.write_bytes(storage.join(cfg.output, rel), data)
            result.files += 1
            result.bytes += len(data)
        if preview or vid.method == ffpp.ORIGINAL:
            panels = {"frame": vid.frames[mid]}
            if vid.masks is not None:
                panels["mask"] = vid.masks[mid]
            c40 = layout.video_path(method, "c40", name) if "c40" in cfg.compressions else None
            if c40 in outputs:
                panels["c40"] = video.decode(outputs[c40])[mid]
            result.previews[vid.method] = panels
    return result


def layout_name(cfg: SynthConfig, method: str, name: str) -> tuple[str, str]:
    """``(method, video name)`` of a generated video (FF++ names: ``A``, ``A_B``) in ``cfg.layout``'s naming: in
    Celeb-DF's, original ``A`` is identity ``idA``'s video 0 and fake ``A_B`` is ``idA_idB_0000``; in DFD's,
    ``A__synthetic_scene`` and ``A_B__synthetic_scene__SYNTH``."""
    if cfg.layout == "ffpp":
        return method, name
    a, b = ffpp.parse_video_name(name)
    layout = datasets.get_layout(cfg.layout)
    if cfg.layout == "celebdf":
        return (method, f"id{a}_0000") if method == ffpp.ORIGINAL else (layout.methods[0], f"id{a}_id{b}_0000")
    return (method, f"{a}__synthetic_scene") if method == ffpp.ORIGINAL else \
        (layout.methods[0], f"{a}_{b}__synthetic_scene__SYNTH")


def write_metadata(cfg: SynthConfig, plan: CorpusPlan, results: list[GroupResult]) -> None:
    """Write the layout's split files (FF++: ``splits/*.json``; Celeb-DF: its test list from the test split's
    pairs; DFD: none) and ``synthetic.json`` (config, per-original captures and per-fake artifacts)."""
    if cfg.layout == "ffpp":
        for split in ffpp.SPLITS:
            storage.write_bytes(storage.join(cfg.output, ffpp.split_path(split)),
                                ffpp.splits_to_json(plan.splits[split]).encode())
    elif cfg.layout == "celebdf":
        layout = datasets.get_layout("celebdf")
        named = [layout_name(cfg, method, name) for a, b in plan.splits["test"] for method, name in
                 ((ffpp.ORIGINAL, a), (ffpp.ORIGINAL, b), (cfg.methods[0], f"{a}_{b}"), (cfg.methods[0], f"{b}_{a}"))]
        lines = [f"{int(method == ffpp.ORIGINAL)} {layout.video_path(method, 'raw', name)}" for method, name in named]
        storage.write_bytes(storage.join(cfg.output, "List_of_testing_videos.txt"), "\n".join(lines).encode())
    meta = {
        "generator": "fst_ray.synth",
        "config": cfg.model_dump(mode="json"),
        "capture_ranges": CAPTURE_RANGES,
        "captures": {vid: capture(cfg, vid).as_dict() for vid in plan.ids},
        "artifact_ranges": synth_methods.ARTIFACT_RANGES,
        "artifacts": {k: v for r in sorted(results, key=lambda r: r.source) for k, v in sorted(r.artifacts.items())},
    }
    storage.write_bytes(storage.join(cfg.output, "synthetic.json"), json.dumps(meta, indent=1).encode())


def contact_sheet(cfg: SynthConfig, plan: CorpusPlan, results: list[GroupResult], example_source: str) -> bytes:
    """PNG: per method, the source's real frame, the target's real frame, the fake, its mask, the fake at c40."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_source = {r.source: r for r in results}
    example = by_source[example_source]
    target = plan.partner[example_source]
    methods = [m for m in cfg.methods if m in example.previews]
    cols = ["source (real A)", "target (real B)", "fake A_B", "mask", "fake A_B, c40"]
    fig, axes = plt.subplots(len(methods), len(cols), figsize=(2.0 * len(cols), 2.1 * len(methods)), squeeze=False)
    real_a = example.previews[ffpp.ORIGINAL]["frame"]
    real_b = by_source[target].previews[ffpp.ORIGINAL]["frame"]
    for row, method in enumerate(methods):
        p = example.previews[method]
        images = [real_a, real_b, p["frame"], p["mask"], p.get("c40")]
        for col, (ax, img) in enumerate(zip(axes[row], images)):
            if img is not None:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1 if img.dtype == bool else 255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(cols[col], fontsize=8)
        axes[row, 0].set_ylabel(method, fontsize=9)
    fig.suptitle(f"synthetic FF++: source {example_source}, target {target} "
                 f"({cfg.size}px, frame {cfg.frames // 2})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
