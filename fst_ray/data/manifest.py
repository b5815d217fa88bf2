"""Listing a dataset tree into a manifest: one row per usable video, one error per unusable input. The tree's
layout (:mod:`fst_ray.datasets`: FF++, DFD, Celeb-DF v2) names each video's method, source and target.

Checks made here, before any decoding (stage names as they appear in ``errors``):
``list`` zero-byte file; ``parse`` a video file whose path or name is not the layout's;
``splits`` a missing split file; ``split`` ids in no split (FF++: or a fake whose ids sit in different
splits); ``landmarks`` a missing sidecar (``landmarks: sidecar``) or no video to detect the face on; ``pair``
a fake whose source original or target identity (a real video of it) is missing or unusable at the same
compression. A malformed split source stops the job at once. A video an identity-disjoint split rule leaves
out of train, val and test (Celeb-DF, DFD) gets split ``none``: it is no error, and the encoders learn from it.

Each row names where its landmarks come from (``landmarks_uri``): with ``detect_per="source"`` those of its
source original (shared by its other compressions and by every fake of that source: a fake keeps its source's
frames and geometry), with ``"video"`` its own; either the corpus's sidecar, or one a face detector writes
under the ingest's output (``{output}/landmarks/`` + the layout's sidecar path), with the video to
detect on (``detect_uri``: that original's or video's best compression present, raw, else c23, else c40).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import pyarrow as pa

from fst_ray import datasets, ffpp, storage
from fst_ray.config import UserError
from fst_ray.tables import field, register_table

MANIFEST = register_table("manifest", pa.schema(
    [
        field("video_id", pa.string(), "{method}/{compression}/{video}: the key prefix of the video's frames"),
        field("uri", pa.string(), "URI of the video file"),
        field("method", pa.string(), "'original' or the dataset's manipulation method"),
        field("compression", pa.string(), "raw, c23 or c40"),
        field("video", pa.string(), "video name (FF++: 'A' for originals, 'A_B' for fakes)"),
        field("source_id", pa.string(), "paper's source: the scene video a fake was made from (FF++: A of 'A_B'; "
                                        "a real: itself)"),
        field("target_id", pa.string(), "paper's target: the identity that gave the face (FF++: B of 'A_B'; a "
                                        "real: its own identity)"),
        field("det_label", pa.int8(), "1 = fake, 0 = real"),
        field("split", pa.string(), "train, val, test, or none (identity-disjoint splits leave the video out)"),
        field("bytes", pa.int64(), "size of the video file in bytes"),
        field("mask_uri", pa.string(), "URI of the fake's mask video; null for reals or when absent", nullable=True),
        field("landmarks_uri", pa.string(), "URI of the landmark sidecar the video's frames are aligned with"),
        field("detect_uri", pa.string(), "URI of the video a face detector writes that sidecar from; null when "
                                         "the corpus's sidecar is used", nullable=True),
        field("reencoded_from", pa.string(), "URI of the raw video this one is re-encoded from (the ingest's "
                                             "reencode); null for a video of the dataset", nullable=True),
    ],
    metadata={"doc": "one row per video the ingest decodes (written beside the tables as manifest.parquet)"},
))


@dataclass(frozen=True)
class ManifestRow:
    """One video to ingest."""

    video_id: str
    uri: str
    method: str
    compression: str
    video: str
    source_id: str
    target_id: str
    det_label: int
    split: str
    bytes: int
    mask_uri: str | None
    landmarks_uri: str = ""
    detect_uri: str | None = None
    reencoded_from: str | None = None

    @property
    def stem(self) -> str:
        """File-name-safe form of ``video_id`` (names of per-video output files)."""
        return self.video_id.replace("/", ".")

    def to_dict(self) -> dict:
        return asdict(self)


def error(path: str, stage: str, reason: str, frame: int | None = None) -> dict:
    """A row of the ``errors`` table (``frame``: the row is about that frame only)."""
    return {"path": path, "stage": stage, "reason": reason, "frame": frame}


def list_tree(root: str) -> list[tuple[str, int]]:
    """``(relative path, bytes)`` of every file under the dataset root URI, sorted."""
    base = ("s3://" if storage.is_remote(root) else "") + storage.resolve(root)[1]
    return [(uri[len(base):].lstrip("/"), size) for uri, size in storage.list_files(root)]


def resolve_layout(dataset: str, present: set[str]) -> datasets.Layout:
    """The layout named ``dataset``, or (``auto``) the one the listed paths match; one clear line otherwise."""
    try:
        return datasets.recognise(present) if dataset == "auto" else datasets.get_layout(dataset)
    except ValueError as e:
        raise UserError(str(e)) from None


def _landmarks_of(ref: datasets.VideoRef, detect_per: str) -> tuple[str, str]:
    """``(method, video)`` whose landmarks crop ``ref``: with ``detect_per="source"`` its source original (a
    fake keeps its source's frames and geometry, so its crop lines up with its source's pixel for pixel, as
    the FST counterfactual baseline needs), with ``"video"`` the video itself."""
    return (datasets.ORIGINAL, ref.source_id) if detect_per == "source" else (ref.method, ref.name)


def build_manifest(root: str, listing: list[tuple[str, int]], methods: list[str] | tuple[str, ...] | None = None,
                   compressions: list[str] | tuple[str, ...] = ffpp.COMPRESSIONS,
                   exclude: list[str] | tuple[str, ...] = (), landmarks: str = "sidecar",
                   cache: str | None = None, detect_per: str = "source",
                   splits_uri: str | None = None, layout: datasets.Layout | str = "auto",
                   split_seed: int = 0) -> tuple[list[ManifestRow], list[dict]]:
    """Manifest rows (sorted by ``video_id``) and error rows for the tree at ``root`` listed as
    ``(relative path, bytes)``, in ``layout``
    (a :class:`~fst_ray.datasets.Layout`, its name, or ``auto``). Only ``methods`` (default: the layout's) and
    originals at ``compressions`` are ingested; paths under an ``exclude`` prefix are ignored. ``landmarks``:
    ``sidecar`` (the corpus's, required), ``detect`` (a face detector's, cached under ``cache``) or ``auto``
    (the corpus's where present). A fake needs its source original and a real video of its target identity at
    its compression."""
    listing = [(p, n) for p, n in listing if not any(p.startswith(x) for x in exclude)]
    present = {p for p, _ in listing}
    sizes = dict(listing)
    if isinstance(layout, str):
        layout = resolve_layout(layout, present)
    methods = layout.methods if methods is None else [m for m in methods if m in layout.methods]
    if not methods:
        raise UserError(f"none of the methods asked for is one of {layout.title}'s: {list(layout.methods)}")
    errors: list[dict] = []
    refs: list[datasets.VideoRef] = []
    for rel, size in listing:
        if not layout.is_video_input(rel):
            continue
        uri = storage.join(root, rel)
        try:
            ref = layout.parse(rel)
        except ValueError as e:
            errors.append(error(uri, "parse", str(e)))
            continue
        if ref.compression not in compressions or (ref.method != datasets.ORIGINAL and ref.method not in methods):
            continue
        if size == 0:
            errors.append(error(uri, "list", "zero-byte file"))
            continue
        sidecar = layout.landmarks_path(*_landmarks_of(ref, detect_per))
        if landmarks == "sidecar" and sidecar not in present:
            errors.append(error(uri, "landmarks", f"missing landmark sidecar {storage.join(root, sidecar)}"))
            continue
        refs.append(ref)
    try:
        placed = layout.assign_splits(root, present, refs, splits_uri, split_seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    errors += [error(uri, "splits", "split file missing") for uri in placed.missing]
    errors += [error(storage.join(root, p), "split", reason) for p, reason in placed.errors]
    refs = [r for r in refs if r.path in placed.split]

    usable = {(r.compression, r.name) for r in refs if r.method == datasets.ORIGINAL}
    identities = {(r.compression, r.target_id) for r in refs if r.method == datasets.ORIGINAL}
    rows = []
    for ref in refs:
        uri = storage.join(root, ref.path)
        if ref.method != datasets.ORIGINAL:
            missing = [f"{what} {name}" for what, name, have in (("source original", ref.source_id, usable),
                                                                 ("target identity", ref.target_id, identities))
                       if (ref.compression, name) not in have]
            if missing:
                errors.append(error(uri, "pair", f"{' and '.join(missing)} missing or unusable at {ref.compression}"))
                continue
        mask = layout.mask_path(ref.method, ref.name)
        on = _landmarks_of(ref, detect_per)
        sidecar = layout.landmarks_path(*on)
        if landmarks != "detect" and sidecar in present:
            landmarks_uri, detect_uri = storage.join(root, sidecar), None
        else:
            best = next((p for p in (layout.video_path(on[0], c, on[1]) for c in layout.compressions)
                         if sizes.get(p, 0) > 0), None)
            if best is None:
                errors.append(error(uri, "landmarks", f"no video of {on[0]} {on[1]} to detect the face on"))
                continue
            landmarks_uri = storage.join(cache, "landmarks", sidecar)
            detect_uri = storage.join(root, best)
        rows.append(ManifestRow(
            video_id=f"{ref.method}/{ref.compression}/{ref.name}", uri=uri, method=ref.method,
            compression=ref.compression, video=ref.name, source_id=ref.source_id, target_id=ref.target_id,
            det_label=ref.det_label, split=placed.split[ref.path], bytes=int(sizes[ref.path]),
            mask_uri=storage.join(root, mask) if mask in present and sizes[mask] > 0 else None,
            landmarks_uri=landmarks_uri, detect_uri=detect_uri,
        ))
    rows.sort(key=lambda r: r.video_id)
    return rows, errors


def reencoded_rows(rows: list[ManifestRow], root: str, output: str, compressions: list[str]) -> list[ManifestRow]:
    """For each ``raw`` row, one row per compression of ``compressions`` whose video is that raw video re-encoded
    (:func:`fst_ray.video.transcode`) into ``{output}/reencoded/{compression}/{path in the tree}``; it keeps the
    raw video's landmarks, mask and split."""
    prefix = storage.join(root, "")
    return [replace(r, video_id=f"{r.method}/{c}/{r.video}", compression=c, reencoded_from=r.uri,
                    uri=storage.join(output, "reencoded", c, r.uri[len(prefix):]))
            for r in rows if r.compression == "raw" for c in compressions]


def manifest_table(rows: list[ManifestRow]) -> pa.Table:
    return pa.Table.from_pylist([r.to_dict() for r in rows], schema=MANIFEST)
