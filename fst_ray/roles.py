"""The role registry: everything a role is, in one place (docs/design.md §1). Pure Python, no torch, so
light modules (the τ sweep's actors) can use it too.

A role is one of the models FST-Matching trains and explains:

- ``source`` (v_s) and ``target`` (v_t), identity encoders: the source encoder's classes are the source scene
  videos (``source_id``), the target encoder's the target identities (``target_id``), as the dataset's layout
  names them (:mod:`fst_ray.datasets`). In FF++ both are the original video ids: a real ``A`` is class ``A``, a
  fake ``A_B`` is ``A`` for the source encoder and ``B`` for the target encoder; in Celeb-DF a fake
  ``id{a}_id{b}_{k}`` is scene ``id{a}_{k}`` for one and identity ``id{b}`` for the other.
  Analysis instruments: they train on every video minus the frame-disjoint hold-out and are scored there.
- ``det`` (v_d), the detector: 2 classes, 0 = real, 1 = fake.
- ``fst``, the FST-Matching detection model: a detector whose source and target heads take the encoders'
  classes.

Detectors train on the identity-disjoint ``train`` split (or H2's paired/unpaired set) and are scored on
``test``. Adding a role (a new dataset's identity encoder, say) is one :func:`register_role` call here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AugmentPolicy", "IDENTITY", "ARTIFACT", "Role", "ROLES", "register_role", "get", "names",
           "detectors", "encoders", "explained_class"]


@dataclass(frozen=True)
class AugmentPolicy:
    """Training augmentation (applied by :func:`fst_ray.train.augment.augment`). ``crop_scale``: area range
    of a random resized crop (``None``: no crop); ``translate``: max shift as a fraction of the side;
    ``hflip``: flip half the images; ``brightness``/``contrast``: max relative jitter; ``degrade``: probability
    of each of a Gaussian blur (sigma uniform in ``blur_sigma``, pixels of the model input) and a JPEG round trip
    (quality uniform in ``jpeg_quality``), drawn independently per image."""

    crop_scale: tuple[float, float] | None = None
    translate: float = 0.0
    hflip: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    degrade: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_quality: tuple[int, int] = (30, 100)


#: identity encoders: who is in the picture survives mirroring, reframing and lighting changes, so random
#: resized crop (area 60-100 %), flip and brightness/contrast jitter (+-20 %) teach identity, not pixels
IDENTITY = AugmentPolicy(crop_scale=(0.6, 1.0), brightness=0.2, contrast=0.2)
#: detectors: the evidence is local, high-frequency blending and compression artifacts, which resampling,
#: blur or colour shifts would erase or fake; so flip and a small integer translation (reflect padding)
#: only. Robustness to compression comes from training on c23/c40 frames themselves; Wang et al. (CVPR 2020)'s
#: blur + JPEG is ``train.degrade`` (off: measured in docs/results.md, it costs raw AUC and moves removed
#: content only to p(fake) = 0.5).
ARTIFACT = AugmentPolicy(translate=1 / 16)


@dataclass(frozen=True)
class Role:
    """One role. ``column``: the ``frames`` column its class comes from; ``label``: that class's field in a
    labelled training batch (:func:`fst_ray.train.labels.label_batch`); ``subset``: the training rows
    (``encoder``: every video minus the frame hold-out; ``detector``: the train split or H2's set);
    ``family``: the model family in :data:`fst_ray.models.FAMILIES`; ``heads``: the ``frames`` columns whose ids
    its identity heads classify (one output per id; its file lists them); ``word``: its name in results and reports;
    ``weight``: the field of a labelled batch that weights its rows' loss (``None``: equal weights)."""

    name: str
    detector: bool
    column: str
    label: str
    subset: str
    augment: AugmentPolicy
    family: str
    heads: tuple[str, ...]
    word: str
    doc: str
    weight: str | None = None

    @property
    def identity_heads(self) -> bool:
        """The model classifies ids (an identity encoder, the FST model's heads)."""
        return bool(self.heads)

    def classes(self, sets) -> list[str] | dict[str, list[str]] | None:
        """The ids its heads classify, given the sorted ids of each column (:func:`fst_ray.train.labels.class_sets`):
        an identity encoder its column's list, a model with several heads ``{column: list}``, a detector ``None``."""
        if not self.heads:
            return None
        return list(sets[self.heads[0]]) if len(self.heads) == 1 else {c: list(sets[c]) for c in self.heads}

    def num_classes(self, sets) -> int | tuple[int, ...]:
        """Outputs of the model: 2 for a detector without identity heads, the class count of an identity encoder,
        the class count of each head of a model with several."""
        if not self.heads:
            return 2
        counts = tuple(len(sets[c]) for c in self.heads)
        return counts[0] if len(counts) == 1 else counts

    @property
    def mask(self) -> str:
        """The field of a labelled batch that marks this role's training rows."""
        return f"m_{self.subset}"


ROLES: dict[str, Role] = {}


def register_role(name: str, **spec) -> Role:
    """Add a role to the registry (see :class:`Role` for the fields)."""
    ROLES[name] = Role(name=name, **spec)
    return ROLES[name]


register_role("source", detector=False, column="source_id", label="source", subset="encoder", augment=IDENTITY,
              family="classifier", heads=("source_id",), word="source",
              doc="source encoder v_s: class = source scene video")
register_role("target", detector=False, column="target_id", label="target", subset="encoder", augment=IDENTITY,
              family="classifier", heads=("target_id",), word="target", weight="w_target",
              doc="target encoder v_t: class = target identity (rows weighted by scene with scene_balance)")
register_role("det", detector=True, column="det_label", label="det", subset="detector", augment=ARTIFACT,
              family="classifier", heads=(), word="detector", doc="detector v_d: 0 = real, 1 = fake")
register_role("fst", detector=True, column="det_label", label="det", subset="detector", augment=ARTIFACT,
              family="fst", heads=("source_id", "target_id"), word="fst",
              doc="FST-Matching detector; its source/target heads take the identity classes")


def get(name: str) -> Role:
    """The role ``name``; a clear error for an unknown one."""
    if name not in ROLES:
        raise ValueError(f"unknown role {name!r}; expected one of {sorted(ROLES)}")
    return ROLES[name]


def names() -> list[str]:
    """Every role, in registry order."""
    return list(ROLES)


def detectors(roles=None) -> list[str]:
    """The detector roles among ``roles`` (default: all), in their order."""
    return [r for r in (ROLES if roles is None else roles) if get(r).detector]


def encoders(roles=None) -> list[str]:
    """The identity-encoder roles among ``roles`` (default: all), in their order."""
    return [r for r in (ROLES if roles is None else roles) if not get(r).detector]


def explained_class(role: str, classes: list[str] | None, row: dict) -> tuple[str, int] | None:
    """``(class name, output index)`` a model of ``role`` explains for a ``frames`` row (docs/design.md §1): a
    detector its real/fake label, an identity encoder the image's id in its ``column``; ``None`` if the
    model has no class for it."""
    spec = get(role)
    if spec.detector:
        return ("fake", 1) if row["det_label"] == 1 else ("real", 0)
    identity = row[spec.column]
    if classes is None or identity not in classes:
        return None
    return identity, classes.index(identity)
