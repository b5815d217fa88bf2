"""``frames_dataset``: the driver read (small tables) and Ray Data's streaming read give the same rows."""

from __future__ import annotations

import pytest
from ray.data.dataset import MaterializedDataset

from fst_ray.data import stream
from fst_ray.train.toy import write_toy_frames

COLUMNS = ["key", "image", "det_label"]


def _rows(ds) -> dict[str, tuple]:
    return {r["key"]: (bytes(r["image"]), int(r["det_label"])) for r in ds.iter_rows()}


@pytest.mark.parametrize("keys", [None, "some"])
def test_driver_and_streaming_reads_agree(ray_session, tmp_path, monkeypatch, keys):
    out = str(tmp_path / "prepared")
    table = write_toy_frames(out, files=3, identities=4, frames=3, size=16)
    wanted = None if keys is None else table["key"].to_pylist()[1::4]
    in_driver = stream.frames_dataset(out, COLUMNS, wanted)
    monkeypatch.setattr(stream, "DRIVER_READ_BYTES", 0)
    streamed = stream.frames_dataset(out, COLUMNS, wanted)
    # the driver read hands Ray finished blocks; the streaming one is a lazy read_parquet plan
    assert isinstance(in_driver, MaterializedDataset) and not isinstance(streamed, MaterializedDataset)
    driver = _rows(in_driver)
    assert _rows(streamed) == driver
    assert set(driver) == set(wanted if wanted is not None else table["key"].to_pylist())
