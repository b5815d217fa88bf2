"""FaceForensics++ (:mod:`fst_ray.ffpp` names its files): source ``A`` and target ``B`` of ``A_B`` are both
original videos, each its own identity; splits from FF++'s ``{train,val,test}.json`` pairs (identity-disjoint)."""

from __future__ import annotations

from fst_ray import ffpp, storage
from fst_ray.datasets import ORIGINAL, Layout, Placement, VideoRef, register_layout

#: FF++'s DeepFakeDetection part lives in the same tree; it is its own layout (:mod:`fst_ray.datasets.dfd`)
DFD_PREFIXES = ("original_sequences/actors/", "manipulated_sequences/DeepFakeDetection/")


class FFPP(Layout):
    name = "ffpp"
    title = "FaceForensics++"
    methods = ffpp.METHODS
    compressions = ffpp.COMPRESSIONS
    donor_videos = True

    def recognise(self, present: set[str]) -> bool:
        return any(p.startswith("original_sequences/youtube/") or p.startswith("splits/") or
                   any(p.startswith(f"manipulated_sequences/{m}/") for m in ffpp.METHODS) for p in present)

    def is_video_input(self, path: str) -> bool:
        parts = path.split("/")
        return "videos" in parts[:-1] and "masks" not in parts[:-1] and not path.startswith(DFD_PREFIXES)

    def parse(self, path: str) -> VideoRef:
        ref = ffpp.parse_video_path(path)
        return VideoRef(path, ref.method, ref.compression, ref.name, ref.source_id, ref.target_id,
                        tuple(dict.fromkeys((ref.source_id, ref.target_id))))

    def video_path(self, method: str, compression: str, name: str) -> str:
        return ffpp.video_path(method, compression, name)

    def mask_path(self, method: str, name: str) -> str | None:
        return None if method == ORIGINAL else ffpp.mask_path(method, name)

    def landmarks_path(self, method: str, name: str) -> str:
        return ffpp.landmarks_path(method, name)

    def assign_splits(self, root: str, present: set[str], refs: list[VideoRef], splits_uri: str | None,
                      seed: int) -> Placement:
        """FF++'s split files (under the root's ``splits/`` or the folder ``splits_uri``): a video's split is
        its pair's; a video whose ids are in no split, or in two, is an error (FF++'s splits cover it all)."""
        out, splits = Placement(), {}
        for split in ffpp.SPLITS:
            rel = ffpp.split_path(split)
            uri = storage.join(root, rel) if splits_uri is None else storage.join(splits_uri, f"{split}.json")
            if (rel not in present) if splits_uri is None else not storage.exists(uri):
                out.missing.append(uri)
                continue
            try:
                splits[split] = ffpp.splits_from_json(storage.read_bytes(uri))
            except ValueError as e:
                raise ValueError(f"malformed split file {uri}: {e}") from None
        try:
            split_of = ffpp.split_of_ids(splits)
        except ValueError as e:
            folder = storage.join(root, "splits") if splits_uri is None else splits_uri
            raise ValueError(f"split files in {folder} disagree: {e}") from None
        for ref in refs:
            split = split_of.get(ref.source_id)
            if split is None or split_of.get(ref.target_id) != split:
                out.errors.append((ref.path, f"ids {ref.source_id}/{ref.target_id} are not in one split"))
            else:
                out.split[ref.path] = split
        return out


register_layout(FFPP())
