"""Celeb-DF v2. Tree (as the maintainers ship it)::

    Celeb-real/id{a}_{k}.mp4            real: identity a, video k
    YouTube-real/{n}.mp4                real, no pairing: its own identity
    Celeb-synthesis/id{a}_id{b}_{k}.mp4 fake (method ``Celeb-synthesis``): a is the original id, b the swapped-in id
    List_of_testing_videos.txt          official test split: lines ``{label} {path}`` (1 = real, 0 = fake)
    {folder}/landmarks/{name}.json      optional landmark sidecars (else a face detector makes them)

In the paper's words the fake ``id{a}_id{b}_{k}`` has source = the scene video ``id{a}_{k}`` (frame-aligned with
the fake) and target = identity ``id{b}``, with no single donor video. The dataset ships one compression
(called ``raw`` here: as distributed); the ingest's ``reencode`` adds FF++'s c23 and c40.

Splits: the official test list is the test split; every identity in it is a test identity; the other
identities are ranked by a seeded hash and 10% go to val, the rest to train. A video outside the list showing a
test identity (or identities of two splits) is left out of every split: training stays identity-disjoint from
the test list, as cross-dataset protocols need.
"""

from __future__ import annotations

import re

from fst_ray import storage
from fst_ray.datasets import ORIGINAL, Layout, Placement, VideoRef, identity_disjoint, register_layout

METHOD = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"
VAL_FRACTION = 0.1
_FOLDERS = {"Celeb-real": ORIGINAL, "YouTube-real": ORIGINAL, "Celeb-synthesis": METHOD}
_REAL = re.compile(r"^(id\d+)_(\d+)$")
_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")
_YOUTUBE = re.compile(r"^\d+$")


class CelebDF(Layout):
    name = "celebdf"
    title = "Celeb-DF v2"
    methods = (METHOD,)
    compressions = ("raw",)

    def recognise(self, present: set[str]) -> bool:
        return any(p.startswith(("Celeb-real/", "Celeb-synthesis/")) or p == TEST_LIST for p in present)

    def is_video_input(self, path: str) -> bool:
        parts = path.split("/")
        return len(parts) == 2 and parts[0] in _FOLDERS

    def parse(self, path: str) -> VideoRef:
        folder, file = path.split("/")
        if not file.endswith(".mp4"):
            raise ValueError(f"{path!r} is not an .mp4 video")
        name = file[: -len(".mp4")]
        if folder == "Celeb-synthesis" and (m := _FAKE.match(name)):
            a, b, k = m.groups()
            return VideoRef(path, METHOD, "raw", name, f"{a}_{k}", b, (a, b))
        if folder == "Celeb-real" and (m := _REAL.match(name)):
            return VideoRef(path, ORIGINAL, "raw", name, name, m.group(1), (m.group(1),))
        if folder == "YouTube-real" and _YOUTUBE.match(name):
            return VideoRef(path, ORIGINAL, "raw", name, name, name, (name,))
        want = {"Celeb-synthesis": "id{a}_id{b}_{k}", "Celeb-real": "id{a}_{k}", "YouTube-real": "{n}"}[folder]
        raise ValueError(f"{path!r}: a {folder} video is named {want}.mp4")

    def video_path(self, method: str, compression: str, name: str) -> str:
        if compression != "raw":
            raise ValueError(f"Celeb-DF v2 ships one compression (raw); {compression} comes from reencode")
        folder = METHOD if method == METHOD else "YouTube-real" if _YOUTUBE.match(name) else "Celeb-real"
        return f"{folder}/{name}.mp4"

    def landmarks_path(self, method: str, name: str) -> str:
        folder = self.video_path(method, "raw", name).split("/")[0]
        return f"{folder}/landmarks/{name}.json"

    def assign_splits(self, root: str, present: set[str], refs: list[VideoRef], splits_uri: str | None,
                      seed: int) -> Placement:
        uri = storage.join(root if splits_uri is None else splits_uri, TEST_LIST)
        if not storage.exists(uri):
            raise ValueError(f"{uri} is missing: Celeb-DF v2's official test list defines its test split")
        test = {}
        for n, line in enumerate(storage.read_bytes(uri).decode().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[0] not in ("0", "1") or parts[1].split("/")[0] not in _FOLDERS:
                raise ValueError(f"malformed test list {uri}: line {n} ({line.strip()!r}) is not "
                                 f"'{{0|1}} {{folder}}/{{video}}.mp4'")
            test[parts[1]] = "test"
        return identity_disjoint(refs, seed, {"val": VAL_FRACTION}, fixed=test)


register_layout(CelebDF())
