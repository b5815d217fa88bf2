"""The Ray Data passes: groups of manifest rows -> tasks -> one status row per video back to the driver."""

from __future__ import annotations

import json
import math
import warnings

from fst_ray.data.config import PrepareConfig
from fst_ray.data.landmarks import face_detector
from fst_ray.data.manifest import ManifestRow
from fst_ray.data.ingest.video import STORAGE, VideoResult, detect_one, ingest_group, reencode_one, watchdog


class _IngestFn:
    """The Ray Data UDF: one group of manifest rows (JSON) in, one status row per video out."""

    def __init__(self, cfg: PrepareConfig, output: str):
        self.cfg, self.output = cfg, output

    def __call__(self, item: dict) -> list[dict]:
        rows = [ManifestRow(**r) for r in json.loads(item["group"])]
        try:
            with watchdog(self.cfg.video_timeout_s * len(rows)):
                if "detect" in item:
                    results = [detect_one(r.landmarks_uri, r.detect_uri, self.cfg, self.output) for r in rows]
                elif "reencode" in item:
                    results = [reencode_one(r, self.output) for r in rows]
                else:
                    results = ingest_group(rows, self.cfg, self.output)
        except OSError as e:  # a storage fault that outlasted the retries: reported to the driver, which stops
            results = [VideoResult(r.video_id, False, stage=STORAGE, reason=f"{r.uri}: {type(e).__name__}: {e}")
                       for r in rows]
        return [r.to_dict() for r in results]


def run_pass(groups: list[list[ManifestRow]], cfg: PrepareConfig, output: str, groups_per_task: int,
              max_retries: int, progress: bool = True, detect: bool = False, reencode: bool = False) -> list[dict]:
    """One streaming Ray Data pass: groups -> tasks of ``groups_per_task`` groups -> status rows (``detect``:
    face detection, each row naming the sidecar to write and the video to detect on; ``reencode``: re-encoding,
    each row naming the video to write and its raw video). A task whose worker dies is retried ``max_retries``
    times, then dropped (its videos are not reported)."""
    import ray

    mode = {"detect": True} if detect else {"reencode": True} if reencode else {}
    items = [{"group": json.dumps([r.to_dict() for r in g]), **mode} for g in groups]
    gpus = {"num_gpus": face_detector(cfg.detector).num_gpus} if detect and face_detector(cfg.detector).num_gpus else {}
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / groups_per_task))
    ds.context.max_errored_blocks = -1  # a lost block is handled by the caller
    with warnings.catch_warnings():
        # Ray 2.60 deprecates **ray_remote_args but names no other way to bound a map task's retries
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = ds.flat_map(_IngestFn(cfg, output), num_cpus=cfg.cpus_per_video, max_retries=max_retries, **gpus)
    from tqdm import tqdm

    videos = sum(len(g) for g in groups)
    desc = "faces" if detect else "re-encode" if reencode else "ingest"
    with tqdm(total=videos, desc=desc, unit="video", disable=not progress) as bar:
        out = []
        for row in ds.iter_rows():
            if row["stage"] == STORAGE:
                raise OSError(row["reason"])
            out.append(row)
            bar.update(1)
    return out


def pass_each(rows: list[ManifestRow], cfg: PrepareConfig, output: str, mode: str, reported_as, fail) -> None:
    """A pass of one row per task with ``max_retries`` retries (``mode``: ``detect`` or ``reencode``);
    ``fail(row, reason)`` records a row whose worker died every time (``reported_as(row)``: its status row's id)."""
    from fst_ray.runtime import init_ray

    init_ray()
    done = {r["video_id"] for r in run_pass([[r] for r in rows], cfg, output, cfg.groups_per_task,
                                            max_retries=cfg.max_retries, **{mode: True})}
    what = {"detect": "detector", "reencode": "re-encoder"}[mode]
    for r in rows:
        if reported_as(r) not in done:
            fail(r, f"{what} process died on each of {cfg.max_retries + 1} attempts")
