"""Decoding K uniformly spaced frames of a video with decord, by seeking or by a forward scan.

- ``seek``: for each wanted frame, decord jumps to the keyframe before it (unless the frame lies ahead
  in the GOP already being decoded) and decodes forward to it.
- ``scan``: one pass from frame 0, decoding every frame up to the last wanted one and converting only
  the wanted ones to RGB.

``auto`` picks per video from its keyframe positions with :func:`choose_strategy`'s cost model: a
scan decodes ``last + 1`` frames; seeking decodes fewer frames but pays a fixed price per seek
(``SEEK_COST``, in frame decodes, measured by ``bench/ingest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

Strategy = Literal["seek", "scan"]

# price of one seek in frame decodes (decoder flush, demuxer jump, reference frames re-decoded):
# bench/ingest.py's seek-vs-scan table puts it near 25 for x264 at 192-256 px (scan won every short-GOP,
# 8-of-250-frames case for c23; raw, with dearer frames, was about even)
SEEK_COST = 25.0


class DecodeError(ValueError):
    """A video that cannot give the wanted frames (unreadable, truncated, too short)."""


def sample_indices(n_frames: int, k: int) -> np.ndarray:
    """``k`` uniformly spaced frame indices of an ``n_frames`` video: the centres of ``k`` equal
    segments, strictly increasing. Raises :class:`DecodeError` if the video is shorter than ``k``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_frames < k:
        raise DecodeError(f"video has {n_frames} frames, fewer than the {k} asked")
    return ((np.arange(k) + 0.5) * n_frames / k).astype(np.int64)


def seek_cost(indices: np.ndarray, keyframes: np.ndarray, seek_price: float = SEEK_COST) -> float:
    """Frame decodes (plus seek prices) to reach ``indices`` by seeking, modelled as decord does it:
    continue forward when no keyframe lies between the previous wanted frame and the next, else seek
    to the keyframe before it."""
    keyframes = np.asarray(keyframes, dtype=np.int64)
    cost, pos = 0.0, -1  # pos: last decoded frame
    for i in indices:
        key = keyframes[np.searchsorted(keyframes, i, side="right") - 1] if len(keyframes) else 0
        if pos < i and key <= pos:
            cost += i - pos
        else:
            cost += seek_price + i - key + 1
        pos = i
    return cost


def choose_strategy(indices: np.ndarray, keyframes: np.ndarray, seek_price: float = SEEK_COST) -> Strategy:
    """``scan`` when decoding every frame up to the last wanted one is cheaper than seeking."""
    return "scan" if int(indices[-1]) + 1 <= seek_cost(indices, keyframes, seek_price) else "seek"


@dataclass
class VideoFrames:
    """An opened video: its length, keyframes, and a way to pull frames."""

    reader: object  # decord.VideoReader
    n_frames: int
    keyframes: np.ndarray

    def frames(self, indices: np.ndarray, strategy: Strategy) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame [H, W, 3] uint8 RGB)`` for increasing ``indices``, one at a time (so a
        caller can keep only its crops). Raises :class:`DecodeError` on corrupt data."""
        from decord import DECORDError

        vr = self.reader
        try:
            if strategy == "seek":
                for i in indices:
                    yield int(i), vr.get_batch([int(i)]).asnumpy()[0]
            elif strategy == "scan":
                vr.seek(0)
                pos = 0  # next frame the reader will return
                for i in indices:
                    if i > pos:
                        vr.skip_frames(int(i - pos))
                    yield int(i), vr.next().asnumpy()
                    pos = int(i) + 1
            else:
                raise ValueError(f"unknown strategy {strategy!r}")
        except (DECORDError, RuntimeError, StopIteration) as e:
            raise DecodeError(f"corrupt video data: {_short(e)}") from e


def open_video(source, threads: int = 1) -> VideoFrames:
    """Open a local path or binary file object with decord; :class:`DecodeError` if it is no video."""
    import decord

    try:
        vr = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=threads)
        n = len(vr)
        keyframes = np.asarray(vr.get_key_indices(), dtype=np.int64)
    except (decord.DECORDError, RuntimeError) as e:
        raise DecodeError(f"unreadable video: {_short(e)}") from e
    if n == 0:
        raise DecodeError("video has no frames")
    return VideoFrames(vr, n, keyframes)


def _short(e: Exception) -> str:
    """The first line of a decord error, without its C++ source location."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split("] ", 1)[-1][:300]
