"""FST triples from the frames index: for each fake frame, its source frame and a target frame.

For a fake frame ``i`` at compression ``c`` with source video ``A`` and target identity ``B``: ``source_key`` is
frame ``i`` of the real video ``A`` at ``c`` (the frame that was manipulated), ``target_key`` is the sampled
frame nearest to ``i`` (ties: the earlier one) of the real video of ``B`` at ``c`` (FF++: original ``B``; where an
identity has several, the first by name). A fake video whose source frame ``i`` was not sampled (length
differs from A's) or whose source video or target identity has no real frames gets one ``pair`` error and no rows.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa

from fst_ray import datasets, tables
from fst_ray.data.manifest import error
from fst_ray.frames import INDEX_COLUMNS


def build_fst_pairs(index: pa.Table, uris: dict[str, str] | None = None) -> tuple[pa.Table, list[dict]]:
    """``fst_pairs`` rows (sorted by ``fake_key``) and ``pair`` errors from a frames index (the
    :data:`INDEX_COLUMNS` of ``frames``). ``uris`` maps ``video_id`` to the video's URI for error rows."""
    uris = uris or {}
    cols = index.select(INDEX_COLUMNS).to_pydict()
    originals: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    identity_video: dict[tuple[str, str], str] = {}
    fakes: dict[tuple[str, str, str], list[tuple[int, str, str, str, str]]] = defaultdict(list)
    for key, video, i, method, comp, _, src, tgt, split in zip(*(cols[c] for c in INDEX_COLUMNS)):
        if method == datasets.ORIGINAL:
            originals[(comp, video)][i] = key
            identity_video[(comp, tgt)] = min(video, identity_video.get((comp, tgt), video))
        else:
            fakes[(method, comp, video)].append((i, key, src, tgt, split))

    rows: dict[str, list] = {f.name: [] for f in tables.FST_PAIRS}
    errors = []
    for (method, comp, video), frames in sorted(fakes.items()):
        src, tgt = frames[0][2], frames[0][3]
        source, target = originals.get((comp, src)), originals.get((comp, identity_video.get((comp, tgt), "")))
        vid = f"{method}/{comp}/{video}"
        reason = None
        if not source or not target:
            missing = [f"{role} {v}" for role, v, got in (("source original", src, source), ("target identity", tgt, target))
                       if not got]
            reason = f"{' and '.join(missing)} has no frames at {comp}"
        elif any(i not in source for i, *_ in frames):
            reason = f"frames {sorted(i for i, *_ in frames if i not in source)} of {video} not sampled in source {src} " \
                     f"(videos differ in length)"
        if reason:
            errors.append(error(uris.get(vid, vid), "pair", reason))
            continue
        target_idx = np.array(sorted(target))
        for i, key, _, _, split in sorted(frames):
            j = target_idx[np.argmin(np.abs(target_idx - i))]  # argmin takes the first (earlier) on ties
            rows["fake_key"].append(key)
            rows["source_key"].append(source[i])
            rows["target_key"].append(target[int(j)])
            rows["method"].append(method)
            rows["compression"].append(comp)
            rows["split"].append(split)
    return pa.Table.from_pydict(rows, schema=tables.FST_PAIRS).sort_by("fake_key"), errors
