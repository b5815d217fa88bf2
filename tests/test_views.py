"""Views over the ingest's tables, on small hand-made indexes: filters, FST pairs, H2 sets, hold-out."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fst_ray import frames as frames_table
from fst_ray.data import views
from fst_ray.data.pairs import build_fst_pairs
from fst_ray.frames import INDEX_COLUMNS

PAIRS = {"train": [("000", "001"), ("002", "003"), ("004", "005"), ("006", "007")], "test": [("008", "009")]}


def make_index(frames=(1, 3, 5, 7), methods=("Deepfakes", "FaceSwap"), compressions=("c23", "c40"),
               pairs=PAIRS, skip=()) -> pa.Table:
    """An index as the ingest writes it: originals and both fakes of every pair, ``frames`` each."""
    rows = []
    for split, ps in pairs.items():
        for a, b in ps:
            videos = [("original", a, a, a), ("original", b, b, b)]
            videos += [(m, f"{s}_{t}", s, t) for m in methods for s, t in ((a, b), (b, a))]
            for method, video, src, tgt in videos:
                for c in compressions:
                    for i in frames:
                        if (method, c, video, i) in skip or (method, c, video) in skip:
                            continue
                        rows.append(dict(key=frames_table.key(method, c, video, i), video=video, frame_index=i,
                                         method=method, compression=c, det_label=int(method != "original"),
                                         source_id=src, target_id=tgt, split=split))
    return pa.Table.from_pylist(rows, schema=pa.schema([frames_table.SCHEMA.field(c) for c in INDEX_COLUMNS]))


def test_where_and_select_filter_by_split_method_compression():
    index = make_index()
    sub = views.select(index, split="test", method=["original", "FaceSwap"], compression="c40")
    assert sub.num_rows == (2 + 2) * 4
    assert set(sub["split"].to_pylist()) == {"test"} and set(sub["compression"].to_pylist()) == {"c40"}
    assert set(sub["method"].to_pylist()) == {"original", "FaceSwap"}
    assert views.where() is None and views.select(index).num_rows == index.num_rows
    assert views.select(index, det_label=0).num_rows == 10 * 2 * 4


def test_fst_pairs_point_at_same_frame_of_source_and_nearest_frame_of_target():
    # 001 lacks frame 3 at c23 (as do the fakes with source 001): a target without the fake's frame index
    index = make_index(skip={("original", "c23", "001", 3), ("Deepfakes", "c23", "001_000", 3),
                             ("FaceSwap", "c23", "001_000", 3)})
    pairs, errors = build_fst_pairs(index)
    assert not errors
    fakes = views.select(index, det_label=1)
    assert pairs.num_rows == fakes.num_rows and pairs["fake_key"].to_pylist() == sorted(fakes["key"].to_pylist())
    keys = set(index["key"].to_pylist())
    for p in pairs.to_pylist():
        method, comp, video, frame = p["fake_key"].split("/")
        src, tgt = video.split("_")
        assert p["source_key"] == f"original/{comp}/{src}/{frame}"
        assert p["source_key"] in keys and p["target_key"] in keys
        assert p["target_key"].startswith(f"original/{comp}/{tgt}/")
    by_fake = {p["fake_key"]: p["target_key"] for p in pairs.to_pylist()}
    assert by_fake["Deepfakes/c23/000_001/00003"] == "original/c23/001/00001"  # tie 1 vs 5: the earlier
    assert by_fake["Deepfakes/c40/000_001/00003"] == "original/c40/001/00003"


def test_fst_pairs_report_fakes_they_cannot_pair():
    index = make_index(skip={("original", "c40", "002"), ("original", "c23", "004", 5)})
    pairs, errors = build_fst_pairs(index, {"Deepfakes/c40/002_003": "s3://b/x.mp4"})
    bad = {e["path"]: e for e in errors}
    assert all(e["stage"] == "pair" for e in errors)
    # 002 missing at c40: 4 fakes (2 methods x 002_003, 003_002); 004 frame 5 missing at c23: 004_005 x 2 methods
    assert len(errors) == 4 + 2
    assert "source original 002" in bad["s3://b/x.mp4"]["reason"]
    assert "target identity 002" in bad["FaceSwap/c40/003_002"]["reason"]
    assert "not sampled in source 004" in bad["Deepfakes/c23/004_005"]["reason"]
    assert not any(k.startswith(("Deepfakes/c40/002_003", "FaceSwap/c23/004_005")) for k in pairs["fake_key"].to_pylist())
    assert any(k.startswith("Deepfakes/c23/005_004") for k in pairs["fake_key"].to_pylist())  # 005's frames all there


def _reals(table):
    return set(views.select(table, det_label=0)["video"].to_pylist())


def test_paired_and_unpaired_sets_have_the_defining_properties():
    index = make_index()
    h2 = views.paired_unpaired(index, seed=3, split="train", compression="c23")
    paired, unpaired = h2.paired, h2.unpaired
    assert paired.num_rows == unpaired.num_rows
    fakes_p, fakes_u = views.select(paired, det_label=1), views.select(unpaired, det_label=1)
    assert fakes_p["key"].to_pylist() == fakes_u["key"].to_pylist() and fakes_p.num_rows > 0
    ids = set(fakes_p["source_id"].to_pylist()) | set(fakes_p["target_id"].to_pylist())
    assert _reals(paired) == ids == set(h2.paired_reals)  # exactly the source and target videos
    assert _reals(unpaired) and not (_reals(unpaired) & ids)  # neither source nor target of any fake
    for t in (paired, unpaired):
        assert set(t["split"].to_pylist()) == {"train"} and set(t["compression"].to_pylist()) == {"c23"}
        assert len(set(t["key"].to_pylist())) == t.num_rows
    again = views.paired_unpaired(index, seed=3, split="train", compression="c23")
    assert again.paired.equals(paired) and again.unpaired.equals(unpaired)
    shuffled = index.take(pa.array(list(range(index.num_rows))[::-1]))
    assert views.paired_unpaired(shuffled, seed=3, split="train", compression="c23").paired.equals(paired)
    choices = {tuple(views.paired_unpaired(index, seed=s).fake_videos) for s in range(8)}
    assert len(choices) > 1  # the seed matters


def test_paired_unpaired_balances_reals_when_sides_differ():
    # 3 pairs: 2 chosen (4 ids) vs 1 left (2 ids); reals are subsampled round-robin to equal counts
    index = make_index(pairs={"train": PAIRS["train"][:3]})
    h2 = views.paired_unpaired(index, seed=0, pairs_fraction=0.6)
    assert h2.paired.num_rows == h2.unpaired.num_rows
    assert len(h2.paired_reals) == 4 and len(h2.unpaired_reals) == 2
    reals = views.select(h2.paired, det_label=0)
    assert reals.num_rows == 2 * 4 and set(reals["video"].to_pylist()) == set(h2.paired_reals)  # 2 each
    with pytest.raises(ValueError, match="at least 2 pairs"):
        views.paired_unpaired(make_index(pairs={"train": PAIRS["train"][:1]}), seed=0)


def test_frame_holdout_is_frame_disjoint_per_source_and_covers_every_video():
    index = make_index(frames=tuple(range(0, 40, 4)), compressions=("raw", "c23", "c40"))
    train, held = views.frame_holdout(index, seed=0, fraction=0.3)
    assert train.num_rows + held.num_rows == index.num_rows
    pos = lambda t: set(zip(t["source_id"].to_pylist(), t["frame_index"].to_pylist()))  # noqa: E731
    assert not (pos(train) & pos(held))
    vids = lambda t: set(zip(t["method"].to_pylist(), t["compression"].to_pylist(), t["video"].to_pylist()))  # noqa: E731
    assert vids(train) == vids(held) == vids(index)
    assert 0.2 < held.num_rows / index.num_rows < 0.4
    again_train, again_held = views.frame_holdout(index.take(pa.array(range(index.num_rows - 1, -1, -1))), seed=0,
                                                  fraction=0.3)
    assert pos(again_held) == pos(held)
    assert pos(views.frame_holdout(index, seed=1, fraction=0.3)[1]) != pos(held)


def test_same_frame_keys_across_compressions():
    assert frames_table.same_frame_keys("FaceSwap/c23/000_001/00007") == {
        "raw": "FaceSwap/raw/000_001/00007", "c23": "FaceSwap/c23/000_001/00007", "c40": "FaceSwap/c40/000_001/00007"}


def test_every_table_reads_in_a_process_that_imported_only_the_readers(tmp_path):
    """Reading a table needs no import of the module that writes it (the registry holds every table's schema)."""
    import subprocess
    import sys

    code = ("import sys; from fst_ray.data import views; from fst_ray import tables; "
            "print(views.read_table(sys.argv[1], 'frames', ['key']).num_rows, tables.read(sys.argv[1], 'shapley').num_rows)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["0", "0"], done.stderr[-2000:]
