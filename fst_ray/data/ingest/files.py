"""The ingest's files under its output: per-video Parquet files, their compaction into shards, and what is finished."""

from __future__ import annotations

import contextlib
import json
import logging

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fst_ray import frames, storage, tables

log = logging.getLogger(__name__)

VIDEO_ERROR, MASK_ERROR, FRAME_ERROR, DETECT_ERROR = "video.", "mask.", "frame.", "detect."


def video_files(output: str, table: str, prefix: str = "") -> dict[str, str]:
    """``stem -> URI`` of the per-video Parquet files in a table folder (``prefix`` stripped; shards not
    included)."""
    out = {}
    for uri, _ in storage.list_files(storage.join(output, table)):
        name = uri.rsplit("/", 1)[-1]
        if name.startswith(prefix) and name.endswith(".parquet") and not name.startswith(SHARD):
            out[name[len(prefix):-len(".parquet")]] = uri
    return out


SHARD, SHARD_VIDEOS, SHARD_ROWS = "part-", b"fst_ray.videos", b"fst_ray.rows"


def _shard_damage(uri: str) -> tuple[list[str], str | None]:
    """The video stems a shard's footer names, and what is wrong with it (``None``: it holds exactly those videos,
    a row group each, with the row counts its footer records). A damaged footer names no videos."""
    fs, path = storage.resolve(uri)
    try:
        meta = pq.read_metadata(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as e:
        if not storage.exists(uri):
            raise
        return [], tables.damage(e)
    kv = meta.metadata or {}
    stems = json.loads(kv.get(SHARD_VIDEOS, b"[]"))
    rows = json.loads(kv[SHARD_ROWS]) if SHARD_ROWS in kv else None  # shards of an older fst-ray record none
    if meta.num_row_groups != len(stems) or (rows is not None and len(rows) != len(stems)):
        return stems, f"{meta.num_row_groups} row groups for {len(stems)} videos"
    key = meta.schema.names.index("key")
    for i, stem in enumerate(stems):
        group = meta.row_group(i)
        if rows is not None and group.num_rows != rows[i]:
            return stems, f"video {stem}: {group.num_rows} rows, {rows[i]} written"
        stats = group.column(key).statistics
        prefix = stem.replace(".", "/", 2) + "/"
        if group.num_rows and not (stats is not None and stats.has_min_max and str(stats.min).startswith(prefix)
                                   and str(stats.max).startswith(prefix)):
            return stems, f"row group {i} does not hold video {stem}"
    return stems, None


def _shards(output: str) -> dict[str, list[str]]:
    """``shard URI -> the video stems it holds``, of the shards that hold what their footers say; a damaged shard
    (a partial upload of an older fst-ray, a truncated file) is deleted, its videos no longer finished unless
    their own files are still there, so the run redoes them."""
    out = {}
    for uri, _ in storage.list_files(storage.join(output, "frames")):
        if uri.rsplit("/", 1)[-1].startswith(SHARD) and uri.endswith(".parquet"):
            stems, damage = _shard_damage(uri)
            if damage is None:
                out[uri] = stems
            else:
                log.warning("frames shard %s is damaged (%s): deleted, its videos are redone", uri, damage)
                delete(uri)
    return out


def finished_frames(output: str) -> dict[str, str]:
    """``stem -> URI`` of every video with frames: its own file, or the (verified) shard holding it. A per-video
    file whose video is also in a shard (a compaction interrupted before its deletes) is deleted."""
    own = video_files(output, "frames")
    held = {stem: uri for uri, stems in _shards(output).items() for stem in stems}
    for stem in [s for s in own if s in held]:
        delete(own.pop(stem))
    return {**own, **held}


def cut_from_shards(output: str, stems: set[str], compression: str) -> None:
    """Rewrite each shard holding any of ``stems`` without their rows (delete it when nothing is left)."""
    for uri, held in _shards(output).items():
        if not stems & set(held):
            continue
        keep = [s for s in held if s not in stems]
        fs, path = storage.resolve(uri)
        table = pq.read_table(path, filesystem=fs, schema=frames.SCHEMA)
        prefixes = pc.binary_join_element_wise(table["method"], table["compression"], table["video"], "/")
        parts = [table.filter(pc.equal(prefixes, s.replace(".", "/", 2))) for s in keep]
        if keep:
            _write_shard(uri, parts, keep, compression)
        else:
            delete(uri)


def _write_shard(uri: str, parts, stems: list[str], compression: str) -> None:
    """Write ``parts`` (one table of the frames schema per video of ``stems``) as one shard, a row group each,
    atomically; its footer names the videos and their row counts, and it is checked against them
    (:func:`_shard_damage`) before it takes its name."""
    schema = frames.SCHEMA.with_metadata({**(frames.SCHEMA.metadata or {}), SHARD_VIDEOS: json.dumps(stems)})
    rows = []
    with storage.atomic_path(uri) as (fs, tmp):
        with pq.ParquetWriter(tmp, schema, filesystem=fs, compression=compression) as writer:
            for part in parts:
                writer.write_table(part.replace_schema_metadata(schema.metadata))
                rows.append(part.num_rows)
            writer.add_key_value_metadata({SHARD_ROWS: json.dumps(rows)})
        written, damage = _shard_damage(("s3://" if storage.is_remote(uri) else "") + tmp)
        if damage or written != stems:
            raise OSError(f"the shard written for {uri} does not read back as written ({damage}): re-run")


def compact_frames(output: str, shard_mib: float, compression: str = "snappy") -> int:
    """Compact the per-video frames files into shards of about ``shard_mib`` MiB (written before the
    per-video files are deleted, so an interruption loses nothing). Returns the shards written."""
    files = sorted((uri, size) for uri, size in storage.list_files(storage.join(output, "frames"))
                   if uri.endswith(".parquet") and not uri.rsplit("/", 1)[-1].startswith(SHARD))
    if not files:
        return 0
    numbers = [int(u.rsplit("/", 1)[-1][len(SHARD):-len(".parquet")]) for u in _shards(output)]
    groups, size = [[]], 0
    for uri, n in files:
        if groups[-1] and size + n > shard_mib * 2 ** 20:
            groups.append([])
            size = 0
        groups[-1].append(uri)
        size += n
    for k, group in enumerate(groups, start=max(numbers, default=-1) + 1):
        stems = [u.rsplit("/", 1)[-1][: -len(".parquet")] for u in group]

        def parts(group=group):
            for u in group:
                fs, path = storage.resolve(u)
                yield pq.read_table(path, filesystem=fs, schema=frames.SCHEMA)

        _write_shard(storage.join(output, "frames", f"{SHARD}{k:05d}.parquet"), parts(), stems, compression)
        for u in group:
            delete(u)
    return len(groups)


def delete(uri: str) -> None:
    fs, path = storage.resolve(uri)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(path)
