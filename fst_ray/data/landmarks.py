"""Where a frame's 5 face landmarks come from: one small interface, a sidecar backend today.

A :class:`LandmarkSource` opens a video's landmarks once (:meth:`LandmarkSource.open`) and returns a
per-frame locator ``(frame_index, frame [H, W, 3]) -> [5, 2]`` pixels (order
:data:`fst_ray.ffpp.LANDMARK_NAMES`). The sidecar backend ignores the pixels and reads the JSON next to
the videos (:func:`fst_ray.ffpp.landmarks_path`); a face-detector backend would run on the pixels.
Backends register in :data:`LANDMARK_SOURCES` under the name a config selects.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from fst_ray import ffpp, storage

Locator = Callable[[int, np.ndarray], np.ndarray]


class LandmarkError(ValueError):
    """No usable landmarks for a video or a frame (missing or malformed sidecar, frame out of range)."""


class LandmarkSource(ABC):
    """Gives the 5 landmarks of each frame of a video."""

    @abstractmethod
    def open(self, method: str, name: str) -> Locator:
        """Prepare video ``name`` of ``method``; raises :class:`LandmarkError` if it has no usable
        landmarks (the locator raises it for a frame without)."""


class SidecarLandmarks(LandmarkSource):
    """Landmarks from the per-video JSON sidecars of an FF++-layout tree at ``root`` (a URI)."""

    def __init__(self, root: str):
        self.root = root

    def uri(self, method: str, name: str) -> str:
        return storage.join(self.root, ffpp.landmarks_path(method, name))

    def open(self, method: str, name: str) -> Locator:
        uri = self.uri(method, name)
        try:
            text = storage.read_bytes(uri)
        except (FileNotFoundError, OSError) as e:
            raise LandmarkError(f"missing landmark sidecar {uri}: {e}") from e
        try:
            _, points = ffpp.landmarks_from_json(text)
            size = _declared_size(text)
        except ValueError as e:
            raise LandmarkError(str(e)) from e

        def locate(index: int, frame: np.ndarray) -> np.ndarray:
            if not 0 <= index < len(points):
                raise LandmarkError(f"sidecar has {len(points)} frames, frame {index} asked")
            if size is not None and (frame.shape[1], frame.shape[0]) != size:
                raise LandmarkError(f"sidecar is for {size[0]}x{size[1]} frames, the video's are "
                                    f"{frame.shape[1]}x{frame.shape[0]}")
            return points[index]

        return locate


def _declared_size(text: str | bytes) -> tuple[int, int] | None:
    """The ``(width, height)`` a sidecar declares, if it does."""
    doc = json.loads(text)
    w, h = doc.get("width"), doc.get("height")
    return (int(w), int(h)) if w is not None and h is not None else None


LANDMARK_SOURCES: dict[str, Callable[[str], LandmarkSource]] = {"sidecar": SidecarLandmarks}


def landmark_source(name: str, root: str) -> LandmarkSource:
    """The backend registered as ``name``, for the dataset at ``root``."""
    if name not in LANDMARK_SOURCES:
        raise ValueError(f"unknown landmark source {name!r}; known: {sorted(LANDMARK_SOURCES)}")
    return LANDMARK_SOURCES[name](root)
