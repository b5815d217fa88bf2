"""Ingest throughput and memory, side by side in one run, on one synthetic corpus.

    python bench/ingest.py [--identities 32] [--size 192] [--frames 48] [-k 16] [--cpus 2] [--work DIR]

Variants, each in a fresh process (and a fresh local Ray where it uses Ray), over the same sampled frames:
- ``ingest``: ``fst_ray.data.ingest.run_ingest`` (decode K frames, align, write Parquet, pairs);
- ``decode-1``: a plain decord loop, one process, ``get_batch`` of the sampled frames (decord's threads);
- ``decode-N``: the same loop in N processes (the decode-only limit at equal cores);
- ``read_videos``: the stock Ray way, ``ray.data.read_videos`` -> filter to the sampled frames -> align ->
  ``write_parquet``.
Worker processes are started and warmed (imports) before the clock starts, for every variant. Reported:
frames/s (wall) and CPU-ms per frame (user + system of the whole process tree, Ray's daemons included:
steadier than wall time on a shared machine), best of ``--repeat`` interleaved rounds. Peak memory is
the peak summed PSS of the variant's process tree, sampled every 0.2 s; "over idle" subtracts the
tree's PSS right before the timed part starts. The ingest
also runs on a corpus 4x smaller to check that memory stays flat as the corpus grows. A micro-benchmark
times seek vs forward scan on long videos at several keyframe intervals (the choice ``decode=auto`` makes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fst_ray import ffpp, storage  # noqa: E402
from fst_ray.data import decode  # noqa: E402
from fst_ray.data.manifest import build_manifest, list_tree  # noqa: E402

METHODS = ["Deepfakes", "FaceSwap"]


# -- children: one variant each, printing one JSON line -------------------------------------------------

def _manifest(root: str):
    rows, _ = build_manifest(root, list_tree(root), METHODS)
    return rows


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def _mark(tag: str) -> float:
    """Tell the parent when the timed part starts; returns this process tree's CPU seconds so far."""
    print(f"@@{tag} {time.time()}", flush=True)
    return _tree_cpu(os.getpid())


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, reaped children included) of a process and its live descendants."""
    kids, todo, total = _children(), [pid], 0.0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total



def _warm() -> int:
    """Import what a worker needs, so process start-up stays out of every variant's timing."""
    import decord  # noqa: F401

    import fst_ray.data.ingest  # noqa: F401

    return os.getpid()


def _start_ray(cpus: int) -> None:
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    warm = ray.remote(num_cpus=1)(_warm)
    ray.get([warm.remote() for _ in range(2 * cpus)])


def child_ingest(args) -> dict:
    from fst_ray.data.config import PrepareConfig
    from fst_ray.data.ingest import run_ingest

    _start_ray(args.cpus)
    cfg = PrepareConfig(input=args.root, output=args.out, frames_per_video=args.k, size=args.crop, methods=METHODS,
                        parquet_compression=args.codec, overwrite=True)
    cpu0 = _mark("start")
    t0 = time.perf_counter()
    summary = run_ingest(cfg)
    seconds = time.perf_counter() - t0
    return {"frames": summary.frames_this_run, "seconds": seconds, "cpu_s": _tree_cpu(os.getpid()) - cpu0,
            "strategies": summary.strategies, "errors": summary.errors}


def _decode_one(uri: str, k: int, threads: int) -> int:
    import decord

    vr = decord.VideoReader(uri, ctx=decord.cpu(0), num_threads=threads)
    frames = vr.get_batch(decode.sample_indices(len(vr), k).tolist()).asnumpy()
    return len(frames)


def child_decode(args) -> dict:
    from multiprocessing import get_context

    uris = [r.uri for r in _manifest(args.root)]
    with get_context("spawn").Pool(args.procs) as pool:
        pool.starmap(_warm, [()] * 2 * args.procs)
        cpu0 = _mark("start")
        t0 = time.perf_counter()
        if args.procs == 1:
            n = sum(_decode_one(u, args.k, 0) for u in uris)
        else:
            n = sum(pool.starmap(_decode_one, [(u, args.k, 1) for u in uris], chunksize=1))
        seconds, cpu = time.perf_counter() - t0, _tree_cpu(os.getpid()) - cpu0
    return {"frames": n, "seconds": seconds, "cpu_s": cpu}


def child_read_videos(args) -> dict:
    import decord
    import ray

    from fst_ray.data import align

    _start_ray(args.cpus)
    rows = _manifest(args.root)
    wanted, points = {}, {}
    for r in rows:
        n = len(decord.VideoReader(r.uri))
        wanted[r.uri] = set(decode.sample_indices(n, args.k).tolist())
        doc = storage.read_bytes(storage.join(args.root, ffpp.landmarks_path(r.method, r.video)))
        points[r.uri] = ffpp.landmarks_from_json(doc).landmarks
    size, margin = args.crop, 1.3

    def keep(row) -> bool:
        return row["frame_index"] in wanted[row["path"]]

    def aligned(row) -> dict:
        crop, _ = align.align_face(row["frame"], points[row["path"]][row["frame_index"]], size, margin)
        return {"path": row["path"], "frame_index": row["frame_index"], "image": crop.tobytes()}

    cpu0 = _mark("start")
    t0 = time.perf_counter()
    ds = ray.data.read_videos(list(wanted), include_paths=True).filter(keep).map(aligned)
    ds.write_parquet(args.out)
    seconds, cpu = time.perf_counter() - t0, _tree_cpu(os.getpid()) - cpu0
    n = ray.data.read_parquet(args.out).count()
    return {"frames": n, "seconds": seconds, "cpu_s": cpu}


CHILDREN = {"ingest": child_ingest, "decode": child_decode, "read_videos": child_read_videos}


# -- parent: corpus, children, memory sampling ----------------------------------------------------------

def _tree_pss(pid: int) -> int:
    """Summed proportional set size (bytes) of a process and all its descendants (Linux /proc)."""
    kids, todo, total = _children(), [pid], 0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration):
            pass
    return total


def run_child(variant: str, root: str, out: str, args, **extra) -> dict:
    """Run one variant in a fresh process on an empty output; sample its tree's memory meanwhile."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", variant, "--root", root, "--out", out, "-k", str(args.k),
           "--crop", str(args.crop), "--cpus", str(args.cpus), "--codec", args.codec]
    for key, val in extra.items():
        cmd += [f"--{key}", str(val)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.time(), _tree_pss(proc.pid)))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    stop.set()
    sampler.join()
    start = next(float(line.split()[1]) for line in stdout.splitlines() if line.startswith("@@start"))
    result = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    before = [m for t, m in samples if t <= start]
    during = [m for t, m in samples if t > start] or [0]
    result.update(peak_mb=max(during) / 2**20, idle_mb=(before[-1] if before else 0) / 2**20)
    result["over_idle_mb"] = result["peak_mb"] - result["idle_mb"]
    result["fps"] = result["frames"] / result["seconds"]
    result["cpu_ms_per_frame"] = 1e3 * result["cpu_s"] / result["frames"]
    return result


def make_corpus(out: str, identities: int, args) -> str:
    """Generate the corpus once (in a subprocess, so its Ray does not linger here)."""
    from fst_ray.synth.config import SynthConfig

    if not Path(out, "splits/test.json").exists():
        cfg = SynthConfig(output=out, identities=identities, frames=args.frames, size=args.size, methods=METHODS,
                          contact_sheet=False, seed=0)
        print(f"generating {identities} identities -> {out}", flush=True)
        subprocess.run([sys.executable, "-c", "import sys, json; from fst_ray.synth.config import SynthConfig; "
                        "from fst_ray.synth.generate import generate_corpus; "
                        "generate_corpus(SynthConfig.model_validate_json(sys.argv[1]))", cfg.model_dump_json()],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def seek_vs_scan(work: Path, args) -> list[dict]:
    """Time both frame-access strategies on long videos (real FF++ length) at several keyframe intervals."""
    from fst_ray import video
    from fst_ray.synth import corpus
    from fst_ray.synth.config import SynthConfig

    cfg = SynthConfig(output=str(work), identities=4, frames=args.long_frames, size=args.size, contact_sheet=False)
    frames = corpus.original_frames(cfg, "000").frames
    out = []
    for comp in ("c23", "raw"):
        for gop in (12, 50, 250):
            path = work / f"long_{comp}_{gop}.mp4"
            path.write_bytes(video.encode(frames, comp, keyframe_interval=gop))
            for k in (8, 32):
                times = {}
                for strategy in ("seek", "scan"):
                    runs = []
                    for _ in range(3):
                        t0 = time.perf_counter()
                        v = decode.open_video(str(path))
                        for _ in v.frames(decode.sample_indices(v.n_frames, k), strategy):
                            pass
                        runs.append(time.perf_counter() - t0)
                    times[strategy] = min(runs)
                v = decode.open_video(str(path))
                idx = decode.sample_indices(v.n_frames, k)
                out.append({"compression": comp, "gop": gop, "keyframes": len(v.keyframes), "k": k,
                            "seek_ms": 1e3 * times["seek"], "scan_ms": 1e3 * times["scan"],
                            "auto": decode.choose_strategy(idx, v.keyframes),
                            "faster": min(times, key=times.get)})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=32, help="identities of the big corpus (small = 1/4)")
    ap.add_argument("--size", type=int, default=192, help="video frame size")
    ap.add_argument("--frames", type=int, default=48, help="frames per video")
    ap.add_argument("--long-frames", type=int, default=300, help="frames of the seek/scan test videos")
    ap.add_argument("-k", type=int, default=16, help="frames sampled per video")
    ap.add_argument("--crop", type=int, default=128, help="aligned crop size S")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--work", default=None, help="folder for corpora and outputs (default: a temp folder)")
    ap.add_argument("--codec", default="snappy", help="Parquet codec of the ingest's frames files")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds of every variant")
    ap.add_argument("--skip", default="", help="comma-separated variants to skip (e.g. read_videos)")
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--root")
    ap.add_argument("--out")
    ap.add_argument("--procs", type=int, default=1)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)), flush=True)
        return

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    big = make_corpus(str(work / f"corpus{args.identities}"), args.identities, args)
    small = make_corpus(str(work / f"corpus{args.identities // 4}"), args.identities // 4, args)
    skip = set(filter(None, args.skip.split(",")))
    n_videos = len(_manifest(big))
    print(f"corpus: {n_videos} videos ({args.identities} identities, {METHODS}, raw/c23/c40), {args.frames} frames "
          f"of {args.size}px; K={args.k}, S={args.crop}; {args.cpus} CPUs; ingest codec {args.codec}", flush=True)

    results: dict[str, dict] = {}
    rounds: dict[str, list[dict]] = {}
    plan = [("ingest", big, {}), ("decode-1", big, {"procs": 1}), (f"decode-{args.cpus}", big, {"procs": args.cpus}),
            ("read_videos", big, {}), ("ingest (corpus / 4)", small, {})]
    for rep in range(args.repeat):  # interleaved rounds: load changes on a shared machine hit every variant
        for name, root, extra in plan:
            if name.split(" ")[0] in skip:
                continue
            variant = name.split(" ")[0].split("-")[0]
            out = str(work / f"out-{name.replace(' ', '').replace('/', '')}")
            r = run_child(variant, root, out, args, **extra)
            print(f"  round {rep + 1} {name:22s} {r['frames']:6d} frames  {r['seconds']:7.1f} s  "
                  f"{r['fps']:7.1f} frames/s  {r['cpu_ms_per_frame']:6.2f} CPU-ms/frame  peak {r['peak_mb']:6.0f} MiB "
                  f"({r['over_idle_mb']:+5.0f} over idle)", flush=True)
            rounds.setdefault(name, []).append(r)
    for name, rs in rounds.items():
        results[name] = {"fps": max(r["fps"] for r in rs),
                         "cpu_ms_per_frame": min(r["cpu_ms_per_frame"] for r in rs),
                         "peak_mb": max(r["peak_mb"] for r in rs), "over_idle_mb": max(r["over_idle_mb"] for r in rs),
                         "strategies": rs[0].get("strategies")}

    ing = results.get("ingest")
    print(f"\n=== ingest benchmark: best of {args.repeat} interleaved rounds (frames/s, CPU-ms/frame), "
          "worst peak memory ===")
    print(f"{'variant':24s}{'frames/s':>10s}{'ingest x':>10s}{'CPU-ms/fr':>11s}{'ingest x':>10s}{'peak MiB':>10s}"
          f"{'over idle':>11s}")
    for name, r in results.items():
        ratio = ing["fps"] / r["fps"] if ing else float("nan")
        cpu_ratio = r["cpu_ms_per_frame"] / ing["cpu_ms_per_frame"] if ing else float("nan")
        print(f"{name:24s}{r['fps']:10.1f}{ratio:10.2f}{r['cpu_ms_per_frame']:11.2f}{cpu_ratio:10.2f}"
              f"{r['peak_mb']:10.0f}{r['over_idle_mb']:11.0f}")
    if ing:
        limit = results.get(f"decode-{args.cpus}")
        rv = results.get("read_videos")
        small_r = results.get("ingest (corpus / 4)")
        if limit:
            print(f"ingest / decode-only limit ({args.cpus} procs): {ing['fps'] / limit['fps']:.2f}x frames/s, "
                  f"{limit['cpu_ms_per_frame'] / ing['cpu_ms_per_frame']:.2f}x per CPU-second  (target >= 0.7)")
        if rv:
            print(f"ingest / read_videos:                 {ing['fps'] / rv['fps']:.2f}x frames/s, "
                  f"{rv['cpu_ms_per_frame'] / ing['cpu_ms_per_frame']:.2f}x per CPU-second  (target >= 2)")
        if small_r:
            print(f"ingest peak memory, corpus x4:        {ing['over_idle_mb']:.0f} vs {small_r['over_idle_mb']:.0f} MiB "
                  f"over idle ({ing['peak_mb']:.0f} vs {small_r['peak_mb']:.0f} MiB total; target: flat)")
        print(f"ingest decode strategies: {ing.get('strategies')}")

    print("\n=== seek vs scan (decord), one video of "
          f"{args.long_frames} frames at {args.size}px ===")
    print(f"{'comp':5s}{'GOP':>5s}{'keys':>6s}{'K':>4s}{'seek ms':>9s}{'scan ms':>9s}  faster  auto")
    for row in seek_vs_scan(work, args):
        print(f"{row['compression']:5s}{row['gop']:5d}{row['keyframes']:6d}{row['k']:4d}{row['seek_ms']:9.1f}"
              f"{row['scan_ms']:9.1f}  {row['faster']:6s}  {row['auto']}")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
