"""FF++'s DeepFakeDetection (DFD), Google/Jigsaw's actor recordings. Tree (inside an FF++ download)::

    original_sequences/actors/{raw,c23,c40}/videos/{actor}__{scene}.mp4
    manipulated_sequences/DeepFakeDetection/{raw,c23,c40}/videos/{X}_{Y}__{scene}__{id}.mp4
    manipulated_sequences/DeepFakeDetection/masks/videos/{X}_{Y}__{scene}__{id}.mp4
    {sequences}/landmarks/{name}.json      optional landmark sidecars

In the paper's words the fake ``X_Y__{scene}__{id}`` has source = the scene video ``X__{scene}`` (actor X's
recording it was made from) and target = actor ``Y``, who recorded many scenes: there is no single donor
video. A real ``X__{scene}`` has source = itself and target = actor X.

Splits: DFD has no official split. Actors are ranked by a seeded hash: 20% test, 10% val, the rest train; a
fake whose two actors fall into different splits is left out (identity-disjoint splits).
"""

from __future__ import annotations

import re

from fst_ray import ffpp
from fst_ray.datasets import ORIGINAL, Layout, Placement, VideoRef, identity_disjoint, register_layout

METHOD = "DeepFakeDetection"
FRACTIONS = {"test": 0.2, "val": 0.1}
_SEQUENCES = {ORIGINAL: "original_sequences/actors", METHOD: f"manipulated_sequences/{METHOD}"}
_REAL = re.compile(r"^(\d+)__(\w+?)$")
_FAKE = re.compile(r"^(\d+)_(\d+)__(\w+?)__(\w+)$")


class DFD(Layout):
    name = "dfd"
    title = "FF++ DeepFakeDetection"
    methods = (METHOD,)
    compressions = ffpp.COMPRESSIONS

    def recognise(self, present: set[str]) -> bool:
        return any(p.startswith(tuple(f"{s}/" for s in _SEQUENCES.values())) for p in present)

    def is_video_input(self, path: str) -> bool:
        parts = path.split("/")
        return (path.startswith(tuple(f"{s}/" for s in _SEQUENCES.values())) and "videos" in parts[:-1]
                and "masks" not in parts[:-1])

    def parse(self, path: str) -> VideoRef:
        parts = path.split("/")
        sequences = "/".join(parts[:2])
        method = next((m for m, s in _SEQUENCES.items() if s == sequences), None)
        if len(parts) != 5 or parts[3] != "videos" or not parts[4].endswith(".mp4"):
            raise ValueError(f"{path!r} is not a DFD video path ({sequences}/{{c}}/videos/{{name}}.mp4)")
        if parts[2] not in self.compressions:
            raise ValueError(f"{path!r}: unknown compression {parts[2]!r}")
        name = parts[4][: -len(".mp4")]
        if method == METHOD and (m := _FAKE.match(name)):
            x, y, scene, _ = m.groups()
            return VideoRef(path, METHOD, parts[2], name, f"{x}__{scene}", y, (x, y))
        if method == ORIGINAL and (m := _REAL.match(name)):
            return VideoRef(path, ORIGINAL, parts[2], name, name, m.group(1), (m.group(1),))
        want = "{X}_{Y}__{scene}__{id}" if method == METHOD else "{actor}__{scene}"
        raise ValueError(f"{path!r}: a DFD {'fake' if method == METHOD else 'real'} video is named {want}.mp4")

    def video_path(self, method: str, compression: str, name: str) -> str:
        return f"{_SEQUENCES[method]}/{compression}/videos/{name}.mp4"

    def mask_path(self, method: str, name: str) -> str | None:
        return None if method == ORIGINAL else f"{_SEQUENCES[method]}/masks/videos/{name}.mp4"

    def landmarks_path(self, method: str, name: str) -> str:
        return f"{_SEQUENCES[method]}/landmarks/{name}.json"

    def assign_splits(self, root: str, present: set[str], refs: list[VideoRef], splits_uri: str | None,
                      seed: int) -> Placement:
        return identity_disjoint(refs, seed, FRACTIONS)


register_layout(DFD())
