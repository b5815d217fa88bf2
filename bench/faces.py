"""Face detection in the ingest, side by side in one run, on real-photo videos (fst_ray.synth.photo).

    python bench/faces.py [--pairs 3] [--frames 24] [-k 12] [--cpus 2] [--work DIR]

- detection frames/s of the dlib detector alone (decoded frames in memory, one process) at 480p and 720p;
- the ingest with detection (``run_ingest``, ``landmarks: detect``, a fresh output, a local Ray of ``--cpus``)
  against a plain loop in ``--cpus`` processes that, for every video of the same tree, decodes its K sampled
  frames, detects the face in each and aligns it (what one would write without fst-ray: per-video detection,
  no reuse, no Parquet). Reported: frames/s (frames out per wall second), and the ratio; target >= 0.7.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from fst_ray import storage  # noqa: E402
from fst_ray.data import align, decode, landmarks  # noqa: E402
from fst_ray.data.manifest import build_manifest, list_tree  # noqa: E402
from fst_ray.synth import photo  # noqa: E402

SIZES = {"480p": (854, 480), "720p": (1280, 720)}


def detector_fps(width: int, height: int, n: int = 12) -> float:
    det = landmarks.face_detector("dlib")
    shots = [photo.frame(f"{k % 4:03d}", k, width, height)[0] for k in range(n)]
    det.faces(shots[0])  # warm
    start = time.perf_counter()
    for f in shots:
        det.faces(f)
    return n / (time.perf_counter() - start)


def _plain_one(args: tuple[str, int, int]) -> int:
    """Decode, detect and align the K sampled frames of one video; frames out."""
    uri, k, size = args
    det = landmarks.face_detector("dlib")
    video = decode.open_video(uri)
    out = 0
    tpl = align.template(size)
    for _, frame in video.frames(decode.sample_indices(video.n_frames, k), "scan"):
        faces = det.faces(frame)
        if faces:
            align.warp(frame, align.similarity(max(faces, key=lambda f: f.score).points, tpl), size)
            out += 1
    return out


def plain_loop(root: str, k: int, size: int, cpus: int) -> tuple[int, float]:
    rows, _ = build_manifest(root, list_tree(root), ["FaceSwap"], landmarks="detect", cache="unused")
    with multiprocessing.get_context("spawn").Pool(cpus) as pool:
        pool.map(_plain_one, [(rows[0].uri, 1, size)] * cpus)  # warm: imports and the model file, every process
        start = time.perf_counter()
        frames = sum(pool.map(_plain_one, [(r.uri, k, size) for r in rows], chunksize=1))
    return frames, time.perf_counter() - start


def ingest(root: str, out: str, k: int, size: int, cpus: int) -> tuple[int, float]:
    import ray

    from fst_ray.data.config import PrepareConfig
    from fst_ray.data.ingest import run_ingest
    from fst_ray.runtime import init_ray

    if not ray.is_initialized():
        init_ray(num_cpus=cpus)
    summary = run_ingest(PrepareConfig(input=root, output=out, frames_per_video=k, size=size, methods=["FaceSwap"],
                                       landmarks="detect", overwrite=True))
    return summary.frames_this_run, summary.pipeline_seconds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3, help="original pairs (each with one fake)")
    ap.add_argument("--frames", type=int, default=24, help="frames per video (the face stays in the frame)")
    ap.add_argument("-k", type=int, default=12)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-faces-"))

    print("| resolution | detector frames/s (one process) |\n|---|---|")
    for name, (w, h) in SIZES.items():
        print(f"| {name} | {detector_fps(w, h):.1f} |")

    root = str(work / "ffpp-480p")
    if not storage.exists(storage.join(root, "splits/test.json")):
        photo.write_tree(root, {"000": ("c23",), "001": ("c23",), "000_001": ("c23",)}, frames=args.frames,
                         width=854, height=480, pairs=args.pairs)
    n_in, s_in = ingest(root, str(work / "out"), args.k, args.crop, args.cpus)
    n_pl, s_pl = plain_loop(root, args.k, args.crop, args.cpus)
    print(f"\n480p, {3 * args.pairs} videos, K={args.k}, {args.cpus} CPUs")
    print("| variant | frames | seconds | frames/s |\n|---|---|---|---|")
    print(f"| ingest with detection (once per source) | {n_in} | {s_in:.1f} | {n_in / s_in:.1f} |")
    print(f"| plain loop: decode, detect, align every video | {n_pl} | {s_pl:.1f} | {n_pl / s_pl:.1f} |")
    print(f"\ningest / plain loop: {n_in / s_in / (n_pl / s_pl):.2f}x (target >= 0.7)")


if __name__ == "__main__":
    main()
