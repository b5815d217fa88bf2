"""The ingest job: manifest, passes, compaction, pairs, the summary and the completion record."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from fst_ray import datasets, frames, lease, storage, tables, video
from fst_ray.config import UserError
from fst_ray.data.config import PrepareConfig
from fst_ray.data.manifest import ManifestRow, build_manifest, list_tree, manifest_table, reencoded_rows, resolve_layout
from fst_ray.data.pairs import build_fst_pairs
from fst_ray.data.views import read_table
from fst_ray.tables import write_parquet
from fst_ray.data.ingest.files import (MASK_ERROR, SHARD, VIDEO_ERROR, compact_frames, cut_from_shards, delete,
                                       finished_frames, video_files)
from fst_ray.data.ingest.passes import pass_each, run_pass
from fst_ray.data.ingest.video import detect_failed, video_failed
from fst_ray.data.records import BEFORE_DATASETS, PARAMS_FILE, SUCCEEDED, SUCCESS_FILE, write_json


@dataclass
class IngestSummary:
    """What a run produced (the whole output, not only this run's share)."""

    output: str
    videos: int
    videos_ok: int
    videos_skipped: int
    frames: int
    frames_this_run: int
    pairs: int
    errors: int
    inputs: int
    bad_inputs: int
    seconds: float
    pipeline_seconds: float
    left_out: int = 0  # videos in no split: identity-disjoint splits leave them out (no error)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    strategies: dict[str, int] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        return self.frames_this_run / self.pipeline_seconds if self.pipeline_seconds > 0 else 0.0

    @property
    def top_reason(self) -> str:
        """The commonest reason inputs were unusable (``-`` when none were)."""
        return max(self.errors_by_reason.items(), key=lambda kv: kv[1], default=("-", 0))[0]

    @property
    def error_share(self) -> float:
        return self.bad_inputs / self.inputs if self.inputs else 1.0

    def exit_code(self, max_error_share: float) -> int:
        """0 when frames came out and the error share is within the limit, else 1."""
        return int(self.frames == 0 or self.error_share > max_error_share)

    def __str__(self) -> str:
        lines = [
            "ingest summary",
            f"  output        {self.output}",
            f"  videos        {self.videos_ok} ok of {self.videos} in the manifest "
            f"({self.videos_skipped} finished earlier, skipped)"
            + (f"; {self.left_out} in no split (identities straddle two; encoders only)" if self.left_out else ""),
            f"  frames        {self.frames} ({self.frames_this_run} this run, {self.frames_per_s:.1f} frames/s, "
            f"decode: {', '.join(f'{k} {v}' for k, v in sorted(self.strategies.items())) or '-'})",
            f"  fst pairs     {self.pairs}",
            f"  errors        {self.errors} rows; {self.bad_inputs} of {self.inputs} inputs unusable "
            f"({100 * self.error_share:.1f}%)",
        ]
        for reason, n in sorted(self.errors_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:12]:
            lines.append(f"    {n:6d}  {reason}")
        if len(self.errors_by_reason) > 12:
            lines.append(f"    ... {len(self.errors_by_reason) - 12} more reasons (see errors/)")
        lines.append(f"  time          {self.seconds:.1f} s")
        return "\n".join(lines)


def _reason_class(stage: str, reason: str) -> str:
    """A short, countable form of an error: stage and the reason's first clause (numbers dropped)."""
    head = reason.split(":")[0].split(" at ")[0]
    head = re.sub(r"\s(/|s3://)\S*", "", head)  # a path names one input, not a kind of error
    head = re.sub(r"\b\d+(\.\d+)?\b", "#", head)  # numbers, not the digits of a name (Face2Face)
    return f"{stage}: {head.strip()[:90]}"


def _params(cfg: PrepareConfig, root: str, output: str, layout: datasets.Layout) -> dict:
    """What the output's content depends on: its input (relative to the output), dataset, frame and split
    parameters, and the settings of each re-encoded compression."""
    return {"input": storage.relative(root, output), "dataset": layout.name,
            **cfg.output_params(), "reencode": {c: video.h264_settings(c) for c in cfg.reencode}}


def _check_params(cfg: PrepareConfig, root: str, output: str, layout: datasets.Layout) -> None:
    """Record the output's parameters, or refuse to resume an output made with different ones."""
    uri = storage.join(output, PARAMS_FILE)
    want = _params(cfg, root, output, layout)
    if storage.exists(uri):
        # recorded by an earlier fst-ray: an absolute input, none of the dataset parameters
        have = {**BEFORE_DATASETS, **json.loads(storage.read_bytes(uri))}
        if have.get("input") == root:
            have["input"] = want["input"]
        if have != want:
            raise UserError(f"{output} was made with {have}, this run asks {want}: "
                             "use a new output or overwrite: true")
    else:
        write_json(uri, want)


def run_ingest(cfg: PrepareConfig) -> IngestSummary:
    """Run the ingest on the current Ray cluster (started if needed), holding the output's lease; see the module
    doc."""
    root = storage.canonical(cfg.input)
    if not storage.exists(root):
        raise UserError(f"input {root} does not exist")
    with lease.hold(cfg.output, "ingest"):
        return _ingest(cfg, root, storage.canonical(cfg.output))


def _ingest(cfg: PrepareConfig, root: str, output: str) -> IngestSummary:
    from fst_ray.runtime import init_ray

    start = time.perf_counter()
    if cfg.overwrite:
        for uri, _ in storage.list_files(output, temporary=True):
            if uri.rsplit("/", 1)[-1] != lease.LEASE_FILE:
                delete(uri)
    listing = list_tree(root)
    layout = resolve_layout(cfg.dataset, {p for p, _ in listing})
    shipped = [c for c in cfg.reencode if c in layout.compressions]
    if shipped:
        raise UserError(f"{layout.title} ships {shipped}: reencode makes compressions a dataset does not ship")
    _check_params(cfg, root, output, layout)
    delete(storage.join(output, SUCCESS_FILE))

    compressions = [c for c in cfg.compressions if c not in cfg.reencode] + (["raw"] if cfg.reencode else [])
    rows, manifest_errors = build_manifest(
        root, listing, cfg.methods, sorted(set(compressions)), cfg.exclude, cfg.landmarks, output, cfg.detect_per,
        cfg.splits, layout, cfg.split_seed)
    made = reencoded_rows(rows, root, output, [c for c in cfg.reencode if c in cfg.compressions])
    rows = sorted([r for r in rows if r.compression in cfg.compressions] + made, key=lambda r: r.video_id)
    write_parquet(manifest_table(rows), storage.join(output, "manifest.parquet"))
    write_parquet(pa.Table.from_pylist(manifest_errors, schema=tables.ERRORS),
                  storage.join(output, "errors", "manifest.parquet"))

    # resume: finished videos are skipped; files of videos no longer in the manifest are removed
    stems = {r.stem for r in rows}
    frames_done = finished_frames(output)
    cut_from_shards(output, {s for s in frames_done if s not in stems and frames_done[s].rsplit("/", 1)[-1]
                              .startswith(SHARD)}, cfg.parquet_compression)
    video_errors = video_files(output, "errors", VIDEO_ERROR)
    for files in (frames_done, video_errors):
        for stem in [s for s in files if s not in stems or (cfg.retry_errors and files is video_errors)]:
            uri = files.pop(stem)
            if not uri.rsplit("/", 1)[-1].startswith(SHARD):
                delete(uri)
    group_stems = {f"{r.method}.{r.video}" for r in rows}
    for stem, uri in video_files(output, "errors", MASK_ERROR).items():
        if stem not in group_stems or cfg.retry_errors:
            delete(uri)
    for table in ("frames", "errors"):  # files an interrupted run left half-written (this run holds the lease)
        for uri, _ in storage.list_files(storage.join(output, table), temporary=True):
            if uri.rsplit("/", 1)[-1].startswith(storage.TMP_PREFIX):
                delete(uri)
    todo = [r for r in rows if r.stem not in frames_done and r.stem not in video_errors]

    results: list[dict] = []
    t0 = time.perf_counter()
    detect = {r.landmarks_uri: r for r in todo if r.detect_uri is not None}
    detect = [r for uri, r in sorted(detect.items()) if not storage.exists(uri)]  # the same face is never detected twice
    if detect:
        pass_each(detect, cfg, output, "detect", lambda r: r.detect_uri,
                   lambda r, reason: detect_failed(r, output, reason))
    encode = [r for r in todo if r.reencoded_from is not None and not storage.exists(r.uri)]
    if encode:
        pass_each(encode, cfg, output, "reencode", lambda r: r.video_id,
                   lambda r, reason: video_failed(r, output, "reencode", reason))
        video_errors = video_files(output, "errors", VIDEO_ERROR)
        todo = [r for r in todo if r.stem not in video_errors]
    if todo:
        init_ray()
        groups: dict[tuple[str, str], list[ManifestRow]] = {}
        for r in todo:
            groups.setdefault((r.method, r.video), []).append(r)
        results = run_pass(list(groups.values()), cfg, output, cfg.groups_per_task, max_retries=0)
        reported = {r["video_id"] for r in results}
        lost = [r for r in todo if r.video_id not in reported]
        if lost:  # a worker died: redo those videos one per task, with bounded retries, then quarantine
            storage.exists(storage.join(output, PARAMS_FILE))  # not while the store is down (OSError: job stops)
            results += run_pass([[r] for r in lost], cfg, output, 1, max_retries=cfg.max_retries)
            reported = {r["video_id"] for r in results}
            reason = (f"decoder process died on each of {cfg.max_retries + 2} attempts (crash, or killed after "
                      f"{cfg.video_timeout_s:.0f} s); quarantined")
            results += [video_failed(r, output, "decode", reason).to_dict() for r in lost if r.video_id not in reported]
    if cfg.compact:
        compact_frames(output, cfg.shard_mib, cfg.parquet_compression)
    pipeline_seconds = time.perf_counter() - t0

    index = _read_index(output)
    pairs, pair_errors = build_fst_pairs(index, {r.video_id: r.uri for r in rows})
    write_parquet(pairs, storage.join(output, "fst_pairs", "fst_pairs.parquet"))
    write_parquet(pa.Table.from_pylist(pair_errors, schema=tables.ERRORS), storage.join(output, "errors", "pairs.parquet"))

    errors = _read_errors(output)
    inputs = {r.uri for r in rows} | {e["path"] for e in manifest_errors if e["stage"] != "splits"}
    summary = IngestSummary(
        output=output, videos=len(rows), left_out=sum(r.split == datasets.NO_SPLIT for r in rows),
        videos_ok=len(finished_frames(output)),
        videos_skipped=len(rows) - len(todo), frames=len(index),
        frames_this_run=sum(r["frames"] for r in results), pairs=len(pairs), errors=len(errors["path"]),
        inputs=len(inputs), bad_inputs=len({p for p, f in zip(errors["path"], errors["frame"]) if f is None} & inputs),
        seconds=time.perf_counter() - start, pipeline_seconds=pipeline_seconds,
        errors_by_reason=dict(Counter(_reason_class(s, r) for s, r in zip(errors["stage"], errors["reason"]))),
        strategies=dict(Counter(r["strategy"] for r in results if r["ok"])),
    )
    if summary.exit_code(cfg.max_error_share):
        return summary  # no completion marker: a consumer must not take a failed ingest for a finished one
    write_json(storage.join(output, SUCCESS_FILE), {
        "verdict": SUCCEEDED, "videos": summary.videos, "videos_ok": summary.videos_ok, "frames": summary.frames,
        "fst_pairs": summary.pairs, "errors": summary.errors, "inputs": summary.inputs,
        "bad_inputs": summary.bad_inputs, "errors_by_reason": summary.errors_by_reason,
        "params": _params(cfg, root, output, layout),
    })
    return summary


def _read_index(output: str) -> pa.Table:
    if not finished_frames(output):
        return pa.Table.from_pylist([], schema=pa.schema([frames.SCHEMA.field(c) for c in frames.INDEX_COLUMNS]))
    return frames.read_index(output)


def _read_errors(output: str) -> dict[str, list]:
    return read_table(output, "errors").to_pydict()
