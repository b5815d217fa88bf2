"""Dataset layouts: how a dataset's tree names its videos, mapped onto one manifest contract in the paper's words.

Every layout (one file per dataset, registered here) turns a video file into a :class:`VideoRef`: ``method``
(``original`` for real videos), ``compression``, ``name``, **source** (the scene video whose frames were
manipulated: always the name of a real video of the same tree, so a fake's frame ``i`` lines up with frame ``i``
of its source), **target** (who gave the face: an identity), the label and the identities shown (for
identity-disjoint splits). The source encoder's classes are the sources, the target encoder's the targets:

=============  ==========================  ==============================  ===================================
dataset        source (scene video)        target                          donor video of the target
=============  ==========================  ==============================  ===================================
FF++           original ``A`` of ``A_B``   original ``B`` (video = id)     yes: video ``B`` (H2 applies)
DFD            ``X__{scene}``              actor ``Y`` of ``X_Y__...``     no: actor Y has many scenes
Celeb-DF v2    ``id{a}_{k}``               identity ``id{b}``              no: identity b has many videos
=============  ==========================  ==============================  ===================================

A real video's target is its own identity (FF++: the video itself, every FF++ original being its own identity).
A tree is recognised by its layout (:func:`recognise`) or named in the config (``dataset``); anything else is
a clear error. Pure Python: no Ray, no I/O beyond what :meth:`Layout.assign_splits` reads.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field

from fst_ray.ffpp import ORIGINAL  # one word for a real video, in every layout

__all__ = ["ORIGINAL", "NO_SPLIT", "VideoRef", "Layout", "LAYOUTS", "register_layout", "get_layout", "recognise",
           "all_methods", "Placement", "identity_disjoint"]


@dataclass(frozen=True)
class VideoRef:
    """One video of a tree: ``path`` relative to the root; ``identities``: the people it shows (a fake: its
    source's and its target's), which identity-disjoint splits keep on one side."""

    path: str
    method: str
    compression: str
    name: str
    source_id: str
    target_id: str
    identities: tuple[str, ...]

    @property
    def det_label(self) -> int:
        """1 = fake, 0 = real."""
        return int(self.method != ORIGINAL)


#: the split of a video an identity-disjoint rule leaves out of train, val and test (its identities straddle
#: two of them): detectors neither train nor are scored on it; the identity encoders still learn from it
NO_SPLIT = "none"


@dataclass
class Placement:
    """Splits of a tree's videos (by ``path``): ``split`` (train, val, test or :data:`NO_SPLIT`) for those
    placed, ``errors`` (path, reason) for inputs a split rule finds faulty (FF++: ids in no split file);
    ``missing``: split files that are not there."""

    split: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class Layout:
    """A dataset layout. Paths are relative to the dataset root; ``compressions``: those the dataset ships
    (others come from the ingest's re-encoding); ``donor_videos``: a fake's target is a real video of the tree
    (H2's paired set needs it)."""

    name: str = ""
    title: str = ""
    methods: tuple[str, ...] = ()
    compressions: tuple[str, ...] = ()
    donor_videos: bool = False

    def recognise(self, present: set[str]) -> bool:
        """True if the listed paths look like this layout."""
        raise NotImplementedError

    def is_video_input(self, path: str) -> bool:
        """True for files the ingest must account for (videos, not masks)."""
        raise NotImplementedError

    def parse(self, path: str) -> VideoRef:
        """The video at ``path``; ``ValueError`` naming what does not parse."""
        raise NotImplementedError

    def video_path(self, method: str, compression: str, name: str) -> str:
        """Inverse of :meth:`parse`; ``ValueError`` for a compression the dataset does not ship."""
        raise NotImplementedError

    def mask_path(self, method: str, name: str) -> str | None:
        """Where a fake's manipulation-mask video would be (``None``: the dataset has no masks)."""
        return None

    def landmarks_path(self, method: str, name: str) -> str:
        """Where a video's landmark sidecar is (:func:`fst_ray.ffpp.landmarks_to_json`), shared by its
        compressions."""
        raise NotImplementedError

    def assign_splits(self, root: str, present: set[str], refs: list[VideoRef], splits_uri: str | None,
                      seed: int) -> Placement:
        """Train/val/test of each video; ``ValueError`` for a malformed split source (the caller stops)."""
        raise NotImplementedError


LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str) -> Layout:
    """The layout ``name``; ``ValueError`` listing the known ones."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def recognise(present: set[str]) -> Layout:
    """The first registered layout the listed paths match; ``ValueError`` naming what was found otherwise."""
    for layout in LAYOUTS.values():
        if layout.recognise(present):
            return layout
    top = sorted({p.split("/", 1)[0] for p in present})[:8]
    raise ValueError(f"no known dataset layout ({', '.join(f'{n}: {v.title}' for n, v in LAYOUTS.items())}) in a "
                     f"tree whose top level holds {top}; name one with dataset: ...")


def all_methods() -> tuple[str, ...]:
    """Every manipulation method of every layout."""
    return tuple(m for layout in LAYOUTS.values() for m in layout.methods)


def _rank(seed: int, identity: str) -> str:
    return hashlib.sha256(f"{seed}/{identity}".encode()).hexdigest()


def identity_disjoint(refs: list[VideoRef], seed: int, fractions: dict[str, float],
                      fixed: dict[str, str] | None = None) -> Placement:
    """Identity-disjoint splits: identities ranked by a seeded hash, the first ``round(n * fraction)`` (at
    least one where there are three or more) into each split of ``fractions`` in order, the rest into
    ``train``. ``fixed`` places videos (by path) as given (an official test list): their identities belong to
    that split, and a video outside ``fixed`` showing one of them gets :data:`NO_SPLIT` (the official list stays
    as it is). So does a video whose identities fall into different splits."""
    fixed = fixed or {}
    owner: dict[str, str] = {}
    for ref in refs:
        for ident in ref.identities if ref.path in fixed else ():
            owner.setdefault(ident, fixed[ref.path])
    listed = set(owner)
    free = sorted({i for r in refs for i in r.identities} - listed, key=lambda i: _rank(seed, i))
    at = 0
    for split, fraction in fractions.items():
        n = max(int(round(len(free) * fraction)), 1 if len(free) >= 3 else 0)
        owner.update({i: split for i in free[at:at + n]})
        at += n
    owner.update({i: "train" for i in free[at:]})
    out = Placement()
    for ref in refs:
        if ref.path in fixed:
            out.split[ref.path] = fixed[ref.path]
            continue
        sides = {owner[i] for i in ref.identities}
        fixed_identity = any(i in listed for i in ref.identities)
        out.split[ref.path] = sides.pop() if len(sides) == 1 and not fixed_identity else NO_SPLIT
    return out


#: the built-in layouts' modules, each registering its layout; the order is recognise's: FF++ before DFD, which
#: lives inside FF++'s tree (a new layout: one file calling :func:`register_layout`, its name added here)
BUILTIN = ("celebdf", "ffpp", "dfd")
for _module in BUILTIN:
    importlib.import_module(f"{__name__}.{_module}")
