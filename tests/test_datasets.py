"""Dataset layouts (FF++, DFD, Celeb-DF v2) onto one manifest contract: source, target, label, split for every kind
of name; identity-disjoint splits; an unknown layout's error. Listings are made up: no video is opened here."""

from __future__ import annotations

import pytest

from fst_ray import datasets, storage
from fst_ray.config import UserError
from fst_ray.data import manifest

CELEB_TEST = ["1 Celeb-real/id2_0000.mp4", "0 Celeb-synthesis/id2_id3_0000.mp4", "1 YouTube-real/00001.mp4"]


def _celebdf(tmp_path, test_list=CELEB_TEST):
    root = str(tmp_path / "Celeb-DF-v2")
    storage.write_bytes(storage.join(root, "List_of_testing_videos.txt"), "\n".join(test_list).encode())
    videos = ["Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4",
              "Celeb-real/id2_0000.mp4", "Celeb-real/id3_0000.mp4", "Celeb-real/id4_0000.mp4",
              "Celeb-real/id5_0000.mp4", "YouTube-real/00000.mp4", "YouTube-real/00001.mp4",
              "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4",
              "Celeb-synthesis/id2_id3_0000.mp4", "Celeb-synthesis/id0_id2_0001.mp4",
              "Celeb-synthesis/id4_id5_0000.mp4"]
    return root, [(v, 100) for v in videos] + [("List_of_testing_videos.txt", 50)]


def _dfd(actors=("01", "02", "03", "04", "05", "06"), comps=("c23",)):
    listing = []
    for c in comps:
        for a in actors:
            listing.append((f"original_sequences/actors/{c}/videos/{a}__kitchen_talk.mp4", 100))
        for x, y in zip(actors, actors[1:] + actors[:1]):
            listing.append((f"manipulated_sequences/DeepFakeDetection/{c}/videos/{x}_{y}__kitchen_talk__AB12CD34.mp4",
                            100))
    listing.append(("manipulated_sequences/DeepFakeDetection/masks/videos/01_02__kitchen_talk__AB12CD34.mp4", 70))
    return listing


def _by_name(rows):
    return {r.video: r for r in rows}


def test_celebdf_names_map_to_source_scene_and_target_identity(tmp_path):
    root, listing = _celebdf(tmp_path)
    rows, errors = manifest.build_manifest(root, listing, landmarks="detect", cache="out")
    assert not errors
    by = _by_name(rows)
    fake, real, yt = by["id0_id1_0000"], by["id0_0001"], by["00000"]
    assert (fake.method, fake.compression, fake.det_label, fake.source_id, fake.target_id) == \
        ("Celeb-synthesis", "raw", 1, "id0_0000", "id1")
    assert (real.method, real.det_label, real.source_id, real.target_id) == ("original", 0, "id0_0001", "id0")
    assert (yt.method, yt.source_id, yt.target_id) == ("original", "00000", "00000")
    # a fake is cropped with its source scene video's landmarks, detected on that video
    assert fake.detect_uri == storage.join(root, "Celeb-real/id0_0000.mp4")
    assert fake.landmarks_uri == storage.join("out", "landmarks", "Celeb-real/landmarks/id0_0000.json")
    assert fake.mask_uri is None
    assert fake.video_id == "Celeb-synthesis/raw/id0_id1_0000"


def test_celebdf_test_split_is_the_official_list_and_training_is_identity_disjoint_from_it(tmp_path):
    root, listing = _celebdf(tmp_path)
    rows, _ = manifest.build_manifest(root, listing, landmarks="detect", cache="out")
    by = _by_name(rows)
    assert {v for v, r in by.items() if r.split == "test"} == {"id2_0000", "id2_id3_0000", "00001"}
    # videos outside the list that show a test identity (id2, id3) are in no split: never trained or scored on
    assert by["id3_0000"].split == by["id0_id2_0001"].split == datasets.NO_SPLIT
    test_ids = {"id2", "id3", "00001"}
    split_of: dict[str, set[str]] = {}
    for r in rows:
        ids = set(datasets.get_layout("celebdf").parse(r.uri[len(root) + 1:]).identities)
        for i in ids:
            split_of.setdefault(i, set()).add(r.split)
        if r.split in ("train", "val"):
            assert not ids & test_ids
    assert all(len(s - {datasets.NO_SPLIT}) == 1 for s in split_of.values()), split_of
    assert {r.split for r in rows} >= {"train", "val", "test"}
    # deterministic for a seed, another seed may draw val otherwise
    again, _ = manifest.build_manifest(root, listing, landmarks="detect", cache="out")
    assert [(r.video_id, r.split) for r in again] == [(r.video_id, r.split) for r in rows]


def test_celebdf_needs_its_test_list_and_a_malformed_line_is_named(tmp_path):
    root, listing = _celebdf(tmp_path, ["1 Celeb-real/id2_0000.mp4", "fake Celeb-synthesis/x.mp4"])
    with pytest.raises(UserError, match=r"line 2 \('fake Celeb-synthesis/x.mp4'\)"):
        manifest.build_manifest(root, listing, landmarks="detect", cache="out")
    storage.write_bytes(storage.join(root, "List_of_testing_videos.txt"), b"")
    (tmp_path / "Celeb-DF-v2" / "List_of_testing_videos.txt").unlink()
    with pytest.raises(UserError, match="official test list"):
        manifest.build_manifest(root, listing, landmarks="detect", cache="out", layout="celebdf")


def test_celebdf_bad_names_are_parse_errors(tmp_path):
    root, listing = _celebdf(tmp_path)
    rows, errors = manifest.build_manifest(root, listing + [("Celeb-synthesis/id0_0000.mp4", 9),
                                                            ("YouTube-real/clip.mp4", 9)],
                                           landmarks="detect", cache="out")
    assert sorted(e["reason"].split(": ", 1)[1] for e in errors) == [
        "a Celeb-synthesis video is named id{a}_id{b}_{k}.mp4", "a YouTube-real video is named {n}.mp4"]


def test_dfd_names_map_to_source_scene_and_target_actor():
    listing = _dfd()
    rows, errors = manifest.build_manifest("dfd", listing, landmarks="detect", cache="out")
    assert not errors
    by = _by_name(rows)
    fake, real = by["01_02__kitchen_talk__AB12CD34"], by["01__kitchen_talk"]
    assert (fake.method, fake.compression, fake.det_label, fake.source_id, fake.target_id) == \
        ("DeepFakeDetection", "c23", 1, "01__kitchen_talk", "02")
    assert (real.method, real.source_id, real.target_id) == ("original", "01__kitchen_talk", "01")
    assert fake.mask_uri == storage.join("dfd", "manipulated_sequences/DeepFakeDetection/masks/videos/"
                                                "01_02__kitchen_talk__AB12CD34.mp4")
    assert fake.detect_uri == storage.join("dfd", "original_sequences/actors/c23/videos/01__kitchen_talk.mp4")
    # identity-disjoint: every actor in one split; a fake across two splits is in none
    actor_split = {r.target_id: r.split for r in rows if r.det_label == 0}
    assert set(actor_split.values()) == {"train", "val", "test"}
    for r in rows:
        if r.det_label == 1:
            x, y = r.video.split("__")[0].split("_")
            assert r.split == (actor_split[x] if actor_split[x] == actor_split[y] else datasets.NO_SPLIT)


def test_a_tree_is_recognised_by_its_layout_or_named_and_an_unknown_one_is_one_line(tmp_path):
    celeb_root, celeb = _celebdf(tmp_path)
    ffpp_tree = {"original_sequences/youtube/c23/videos/000.mp4", "splits/train.json"}
    assert datasets.recognise({p for p, _ in celeb}).name == "celebdf"
    assert datasets.recognise(ffpp_tree).name == "ffpp"
    assert datasets.recognise({p for p, _ in _dfd()}).name == "dfd"
    # a full FF++ download holds DFD too: it is FF++ unless DFD is named, and FF++ does not read DFD's files
    both = ffpp_tree | {p for p, _ in _dfd()}
    assert datasets.recognise(both).name == "ffpp"
    assert not any(datasets.get_layout("ffpp").is_video_input(p) for p, _ in _dfd())
    rows, _ = manifest.build_manifest("x", [(p, 10) for p in both], layout="dfd", landmarks="detect", cache="o")
    assert {r.method for r in rows} == {"original", "DeepFakeDetection"}
    with pytest.raises(UserError, match=r"no known dataset layout .* top level holds \['clips', 'notes.txt'\]"):
        manifest.build_manifest("x", [("clips/a.mp4", 10), ("notes.txt", 3)])
    with pytest.raises(UserError, match="unknown dataset 'celeb'"):
        manifest.build_manifest("x", celeb, layout="celeb")
    with pytest.raises(UserError, match=r"none of the methods .* Celeb-DF v2's: \['Celeb-synthesis'\]"):
        manifest.build_manifest(celeb_root, celeb, methods=["Deepfakes"], landmarks="detect", cache="o")


@pytest.mark.parametrize("name", ["ffpp", "dfd", "celebdf"])
def test_video_path_is_the_inverse_of_parse(name):
    layout = datasets.get_layout(name)
    samples = {"ffpp": ["original_sequences/youtube/raw/videos/000.mp4",
                        "manipulated_sequences/Face2Face/c40/videos/000_003.mp4"],
               "dfd": [p for p, _ in _dfd(comps=("raw",)) if "/masks/" not in p],
               "celebdf": ["Celeb-real/id0_0000.mp4", "YouTube-real/00012.mp4", "Celeb-synthesis/id0_id9_0004.mp4"]}
    for path in samples[name]:
        ref = layout.parse(path)
        assert layout.video_path(ref.method, ref.compression, ref.name) == path
        assert layout.is_video_input(path)
