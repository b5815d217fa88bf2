"""Listing an FF++-layout tree into a manifest: one row per usable video, one error per unusable input.

Checks made here, before any decoding (stage names as they appear in ``errors``):
``list`` zero-byte file; ``parse`` a file in a ``videos/`` folder whose path or name is not FF++'s;
``splits`` a missing or malformed ``splits/*.json``; ``split`` ids in no split (or a fake whose ids
sit in different splits); ``landmarks`` a missing sidecar (``landmarks: sidecar``) or no video to detect the
face on; ``pair`` a fake whose source or target original is missing (or unusable) at the same compression.
Reals take the split of their pair.

Each row names where its landmarks come from (``landmarks_uri``): with ``detect_per="source"`` those of its
source original (shared by its other compressions and by every fake of that source: a fake keeps its source's
frames and geometry), with ``"video"`` its own; either the corpus's sidecar, or one a face detector writes
under the ingest's output (``{output}/landmarks/`` + :func:`fst_ray.ffpp.landmarks_path`), with the video to
detect on (``detect_uri``: that original's or video's best compression present, raw, else c23, else c40).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from fst_ray import ffpp, storage
from fst_ray.config import UserError
from fst_ray.tables import field, register_table

MANIFEST = register_table("manifest", pa.schema(
    [
        field("video_id", pa.string(), "{method}/{compression}/{video}: the key prefix of the video's frames"),
        field("uri", pa.string(), "URI of the video file"),
        field("method", pa.string(), "'original' or a FF++ manipulation method"),
        field("compression", pa.string(), "raw, c23 or c40"),
        field("video", pa.string(), "video name: 'A' for originals, 'A_B' for fakes"),
        field("source_id", pa.string(), "paper's source: A of 'A_B' (and of 'A')"),
        field("target_id", pa.string(), "paper's target: B of 'A_B' (A for originals)"),
        field("det_label", pa.int8(), "1 = fake, 0 = real"),
        field("split", pa.string(), "train, val or test"),
        field("bytes", pa.int64(), "size of the video file in bytes"),
        field("mask_uri", pa.string(), "URI of the fake's mask video; null for reals or when absent", nullable=True),
        field("landmarks_uri", pa.string(), "URI of the landmark sidecar the video's frames are aligned with"),
        field("detect_uri", pa.string(), "URI of the video a face detector writes that sidecar from; null when "
                                         "the corpus's sidecar is used", nullable=True),
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


def is_video_input(relpath: str) -> bool:
    """True for files the ingest must account for: anything in a ``videos/`` folder except masks."""
    parts = relpath.split("/")
    return "videos" in parts[:-1] and "masks" not in parts[:-1]


def read_splits(root: str, present: set[str], splits_uri: str | None = None
                ) -> tuple[dict[str, list[tuple[str, str]]], list[dict]]:
    """The ``[A, B]`` pairs of each split file present (under ``root``'s ``splits/``, or in the folder
    ``splits_uri``: FF++'s own ``train.json``, ``val.json``, ``test.json``), and an error row per missing one.
    A malformed file stops the job at once (:class:`~fst_ray.config.UserError` naming the file and the entry):
    it would otherwise quarantine every video whose ids it fails to place."""
    splits, errors = {}, []
    for split in ffpp.SPLITS:
        rel = ffpp.split_path(split)
        uri = storage.join(root, rel) if splits_uri is None else storage.join(splits_uri, f"{split}.json")
        if (rel not in present) if splits_uri is None else not storage.exists(uri):
            errors.append(error(uri, "splits", "split file missing"))
            continue
        try:
            splits[split] = ffpp.splits_from_json(storage.read_bytes(uri))
        except ValueError as e:
            raise UserError(f"malformed split file {uri}: {e}") from None
    try:
        ffpp.split_of_ids(splits)
    except ValueError as e:
        folder = storage.join(root, "splits") if splits_uri is None else splits_uri
        raise UserError(f"split files in {folder} disagree: {e}") from None
    return splits, errors


def _landmarks_of(ref: ffpp.VideoRef, detect_per: str) -> tuple[str, str]:
    """``(method, video)`` whose landmarks crop ``ref``: with ``detect_per="source"`` its source original (a
    fake keeps its source's frames and geometry, so its crop lines up with its source's pixel for pixel, as
    the FST counterfactual baseline needs), with ``"video"`` the video itself."""
    return (ffpp.ORIGINAL, ref.source_id) if detect_per == "source" else (ref.method, ref.name)


def build_manifest(root: str, listing: list[tuple[str, int]], methods: list[str] | tuple[str, ...] = ffpp.METHODS,
                   compressions: list[str] | tuple[str, ...] = ffpp.COMPRESSIONS,
                   exclude: list[str] | tuple[str, ...] = (), landmarks: str = "sidecar",
                   cache: str | None = None, detect_per: str = "source",
                   splits_uri: str | None = None) -> tuple[list[ManifestRow], list[dict]]:
    """Manifest rows (sorted by ``video_id``) and error rows for the tree at ``root`` listed as
    ``(relative path, bytes)``. Only ``methods`` (and originals) at ``compressions`` are ingested;
    paths under an ``exclude`` prefix are ignored. ``landmarks``: ``sidecar`` (the corpus's, required),
    ``detect`` (a face detector's, cached under ``cache``) or ``auto`` (the corpus's where present)."""
    listing = [(p, n) for p, n in listing if not any(p.startswith(x) for x in exclude)]
    present = {p for p, _ in listing}
    sizes = dict(listing)
    splits, errors = read_splits(root, present, splits_uri)
    split_of = ffpp.split_of_ids(splits)

    candidates: list[tuple[ffpp.VideoRef, str]] = []
    for rel, size in listing:
        if not is_video_input(rel):
            continue
        uri = storage.join(root, rel)
        try:
            ref = ffpp.parse_video_path(rel)
        except ValueError as e:
            errors.append(error(uri, "parse", str(e)))
            continue
        if ref.compression not in compressions or (ref.method != ffpp.ORIGINAL and ref.method not in methods):
            continue
        if size == 0:
            errors.append(error(uri, "list", "zero-byte file"))
            continue
        sidecar = ffpp.landmarks_path(*_landmarks_of(ref, detect_per))
        if landmarks == "sidecar" and sidecar not in present:
            errors.append(error(uri, "landmarks", f"missing landmark sidecar {storage.join(root, sidecar)}"))
            continue
        split = split_of.get(ref.source_id)
        if split is None or split_of.get(ref.target_id) != split:
            errors.append(error(uri, "split", f"ids {ref.source_id}/{ref.target_id} are not in one split"))
            continue
        candidates.append((ref, split))

    usable_originals = {(r.compression, r.name) for r, _ in candidates if r.method == ffpp.ORIGINAL}
    rows = []
    for ref, split in candidates:
        uri = storage.join(root, ref.path)
        if ref.method != ffpp.ORIGINAL:
            missing = [f"{role} original {vid}" for role, vid in (("source", ref.source_id), ("target", ref.target_id))
                       if (ref.compression, vid) not in usable_originals]
            if missing:
                errors.append(error(uri, "pair", f"{' and '.join(missing)} missing or unusable at {ref.compression}"))
                continue
        mask = None if ref.method == ffpp.ORIGINAL else ffpp.mask_path(ref.method, ref.name)
        on = _landmarks_of(ref, detect_per)
        sidecar = ffpp.landmarks_path(*on)
        if landmarks != "detect" and sidecar in present:
            landmarks_uri, detect_uri = storage.join(root, sidecar), None
        else:
            best = next((ffpp.video_path(on[0], c, on[1]) for c in ffpp.COMPRESSIONS
                         if sizes.get(ffpp.video_path(on[0], c, on[1]), 0) > 0), None)
            if best is None:
                errors.append(error(uri, "landmarks", f"no video of {on[0]} {on[1]} to detect the face on"))
                continue
            landmarks_uri = storage.join(cache, "landmarks", ffpp.landmarks_path(*on))
            detect_uri = storage.join(root, best)
        rows.append(ManifestRow(
            video_id=f"{ref.method}/{ref.compression}/{ref.name}", uri=uri, method=ref.method,
            compression=ref.compression, video=ref.name, source_id=ref.source_id, target_id=ref.target_id,
            det_label=ref.det_label, split=split, bytes=int(sizes[ref.path]),
            mask_uri=storage.join(root, mask) if mask in present and sizes[mask] > 0 else None,
            landmarks_uri=landmarks_uri, detect_uri=detect_uri,
        ))
    rows.sort(key=lambda r: r.video_id)
    return rows, errors


def manifest_table(rows: list[ManifestRow]) -> pa.Table:
    return pa.Table.from_pylist([r.to_dict() for r in rows], schema=MANIFEST)
