"""FST-Matching metrics on Shapley maps φ (pure numpy): Q_τ (H1, H2), δ (H3), baselines, bootstrap CIs.

Maps are one image's φ over the G×G grid, given as ``[G, G]`` or ``[G²]``; for many images ``[N, G²]``
(or ``[N, G, G]``). ``φ_s``, ``φ_t``, ``φ_d``: source encoder, target encoder, detector.

**Q_τ** — does the detector's evidence lie outside what identifies source or target? With
``U = max(φ_s, φ_t)`` (elementwise) and a mask ``M_τ`` of the most source/target-relevant cells:

- ``variant="official"`` (the authors' code): ``M`` = cells with ``U`` above the value at sorted
  position ``⌊G²·τ⌋`` of ``relu(U)`` (so ``τ`` is a percentile: about ``(1−τ)·G²`` cells);
  ``Q_τ = mean_cells((1−M)·φ_d) − mean_cells(M·φ_d)``, φ_d as given (unit-L2 maps). Its value
  for a φ_d unrelated to ``M`` is not 0: see :func:`q_baseline`.
- ``variant="paper"`` (the paper's formula): ``M_τ = I(Û > τ)`` and
  ``Q_τ = Σ(1−M_τ)·φ̂_d / Σ(1−M_τ) − 1/2``, where ``^`` marks a map min–max scaled to [0, 1]
  (the formula's absolute ``τ`` and its ``−1/2`` only make sense on [0, 1]-scaled maps; this
  scaling is fst-ray's reading, stated wherever a number uses it). Where ``M_τ`` covers every
  cell the ratio is undefined and ``Q_τ`` is NaN.

Q > 0 (official) / Q above its baseline: the detector relies on cells that are neither source- nor
target-relevant.

**δ** — stability under compression: ``δ = mean_images ½[cos(φ^c23, φ^raw) + cos(φ^c40, φ^raw)]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

OFFICIAL_TAUS = tuple(np.round(np.arange(0.60, 0.951, 0.05), 2))  # 0.60 .. 0.95: the official grid stops there
VARIANTS = ("paper", "official")


def check_taus(taus) -> list[float]:
    """The τ values Q_τ is defined for, in either variant: a non-empty list in [0, 1) (official: the sorted
    position ⌊G²τ⌋ must be a cell; paper: τ ≥ 1 leaves M_τ empty on maps scaled to [0, 1], τ < 0 fills it, and
    either makes Q a mean over no cells); raises ``ValueError``."""
    taus = list(taus)
    bad = [t for t in taus if not 0.0 <= t < 1.0]
    if not taus or bad:
        raise ValueError(f"tau must be a non-empty list of values in [0, 1), got {taus}")
    return taus


def _flat(phi) -> np.ndarray:
    a = np.asarray(phi, dtype=np.float64)
    return a.reshape(-1)


def _batch(phi) -> np.ndarray:
    a = np.asarray(phi, dtype=np.float64)
    if a.ndim == 3:
        a = a.reshape(a.shape[0], -1)
    if a.ndim != 2:
        raise ValueError(f"expected maps [N, G²] or [N, G, G], got shape {a.shape}")
    return a


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(), a.max()
    return np.zeros_like(a) if hi == lo else (a - lo) / (hi - lo)


def intersection_mask(phi_s, phi_t, tau: float, variant: str = "official") -> np.ndarray:
    """``M_τ`` (bool, flat ``[G²]``): the cells most relevant to source or target."""
    u = np.maximum(_flat(phi_s), _flat(phi_t))
    if u.shape != _flat(phi_t).shape:
        raise ValueError("φ_s and φ_t must have the same shape")
    if variant == "official":
        relu = np.maximum(u, 0.0)
        k = int(np.floor(u.size * tau))
        if not 0 <= k < u.size:
            raise ValueError(f"official τ must lie in [0, 1): got {tau}")
        return u > np.sort(relu)[k]
    if variant == "paper":
        return _minmax(u) > tau
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def q_tau(phi_s, phi_t, phi_d, tau: float, variant: str = "official") -> float:
    """Q_τ of one image's maps (see the module doc for both variants)."""
    d = _flat(phi_d)
    m = intersection_mask(phi_s, phi_t, tau, variant)
    if m.shape != d.shape:
        raise ValueError(f"φ_d has {d.size} cells, φ_s/φ_t {m.size}")
    if variant == "official":
        return float(((~m) * d).mean() - (m * d).mean())
    outside = ~m
    if not outside.any():
        return float("nan")
    return float(_minmax(d)[outside].sum() / outside.sum() - 0.5)


def q_curve(phi_s, phi_t, phi_d, taus=OFFICIAL_TAUS, variant: str = "official") -> np.ndarray:
    """Q_τ of many images over a τ grid: ``[N, len(taus)]`` (maps given as ``[N, G²]`` or ``[N, G, G]``)."""
    s, t, d = _batch(phi_s), _batch(phi_t), _batch(phi_d)
    if not s.shape == t.shape == d.shape:
        raise ValueError(f"map batches differ in shape: {s.shape}, {t.shape}, {d.shape}")
    return np.array([[q_tau(s[i], t[i], d[i], tau, variant) for tau in taus] for i in range(len(s))])


def q_baseline(phi_s, phi_t, phi_d, taus=OFFICIAL_TAUS, variant: str = "official", n_shuffles: int = 20,
               seed: int = 0) -> np.ndarray:
    """The random baseline of Q: ``q_curve`` with each image's φ_d shuffled over cells (its values kept,
    their places random), averaged over ``n_shuffles`` shuffles; ``[N, len(taus)]``."""
    d = _batch(phi_d)
    rng = np.random.default_rng(seed)
    runs = [q_curve(phi_s, phi_t, rng.permuted(d, axis=1), taus, variant) for _ in range(n_shuffles)]
    return np.mean(runs, axis=0)


def q_per_image(phi_s, phi_t, phi_d, taus=OFFICIAL_TAUS, variant: str = "official",
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per image, τ-averaged Q_τ and its shuffled-φ_d baseline (``[N]`` each): H1 reads their difference, the
    gap."""
    q = np.nanmean(q_curve(phi_s, phi_t, phi_d, taus, variant), axis=1)
    return q, np.nanmean(q_baseline(phi_s, phi_t, phi_d, taus, variant, seed=seed), axis=1)


def unit_norm(phi) -> np.ndarray:
    """Maps scaled to unit L2 norm along the last axis (the paper normalises every φ so); zero maps stay zero."""
    a = np.asarray(phi, dtype=np.float64)
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def cosine(a, b) -> float:
    """Cosine similarity of two maps (0 when either is all zeros)."""
    a, b = _flat(a), _flat(b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def stability_per_image(phi_raw, phi_c23, phi_c40) -> np.ndarray:
    """``½[cos(φ^c23, φ^raw) + cos(φ^c40, φ^raw)]`` per image: ``[N]``; maps ``[N, G²]`` or ``[N, G, G]``,
    row ``i`` of each being the same image (video, frame) at that compression."""
    raw, c23, c40 = _batch(phi_raw), _batch(phi_c23), _batch(phi_c40)
    if not raw.shape == c23.shape == c40.shape:
        raise ValueError(f"map batches differ in shape: {raw.shape}, {c23.shape}, {c40.shape}")
    return np.array([0.5 * (cosine(c23[i], raw[i]) + cosine(c40[i], raw[i])) for i in range(len(raw))])


def stability(phi_raw, phi_c23, phi_c40) -> float:
    """δ: the mean over images of :func:`stability_per_image`."""
    return float(np.mean(stability_per_image(phi_raw, phi_c23, phi_c40)))


def bootstrap_ci(values, statistic: Callable[[np.ndarray], float] = np.nanmean, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over images (axis 0 of ``values``)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), (n_boot, len(v)))
    stats = np.array([statistic(v[i]) for i in idx])
    alpha = (1 - level) / 2
    return float(np.nanquantile(stats, alpha)), float(np.nanquantile(stats, 1 - alpha))


# -- estimator noise (docs/design.md §1, "Noise") ----------------------------------------------------------
#
# Two independent estimates of one image's map, φ̂ = φ + ε, agree only up to their noise: with S = ‖φ‖² and
# E = E‖ε‖², E[cos(φ̂₁, φ̂₂)] ≈ S / (S + E), the map's *noise ceiling* r (1 for exact maps, 0 for pure noise).
# fst-ray measures it from the two independent halves of each map's budget (``phi_a``, ``phi_b``, each at
# half the evaluations): their cosine estimates the half-budget ceiling r_h = S / (S + E_h); the map used
# (the mean of the halves) has noise E_h / 2, so its ceiling is r = 2 r_h / (1 + r_h) (Spearman–Brown).
# A cosine between two different maps with independent noise is attenuated to about cos_true · √(r₁ r₂):
# :func:`disattenuate` divides that out. Q_τ is linear in φ_d given the mask, and so is its shuffled
# baseline, so Q − baseline shrinks by √r_d (the unit-norm map's signal share): see :func:`q_corrected`.
# Where each half runs at a regression estimator's minimum budget its noise is heavy-tailed, and the
# Spearman–Brown ceiling overstates the mean's (tests/test_noise.py: 0.52 against 0.42 measured on a 16-player
# game at 35 evaluations per half); δ's correction uses per-image ceilings and stays unbiased there.

# Offsets. An efficient estimator's map sums to v(N) − v(∅), so every map carries a uniform component Σφ/G²,
# the same in each of its estimates (noise-free) and in the maps of any image the model scores alike. It says
# nothing about *where* the evidence is, yet it raises the cosine of any two maps: halves (so ceilings) and
# compressions (so δ). Noise ceilings, the gates and δ's reading therefore use centred maps (:func:`centre`);
# the paper's δ is reported beside its centred value. Q's gap is unchanged by the offset (Q and its shuffled
# baseline move together), but the unit norm includes it, so a gap shrinks by the *plain* ceiling: see
# :func:`q_corrected`.

#: a reading whose (centred) noise ceiling is below this is reported as "too noisy to read"
READABLE_CEILING = 0.5
#: a detector whose test AUC is below this detects too little for its maps to say what it detects with
USEFUL_AUC = 0.6


def centre(phi) -> np.ndarray:
    """Maps minus their mean over cells (the last axis): the uniform offset Σφ/G² removed."""
    a = np.asarray(phi, dtype=np.float64)
    return a - a.mean(axis=-1, keepdims=True)


def split_half_cosine(phi_a, phi_b) -> np.ndarray:
    """Per image, the cosine between two independent half-budget estimates of its map: ``[N]``."""
    a, b = _batch(phi_a), _batch(phi_b)
    return np.array([cosine(a[i], b[i]) for i in range(len(a))])


def spearman_brown(r_half) -> np.ndarray:
    """The ceiling of the mean of two halves from the half-budget ceiling ``r_half`` (negative r_half, which
    pure noise gives by chance, counts as 0)."""
    r = np.clip(np.asarray(r_half, dtype=np.float64), 0.0, 1.0)
    return 2 * r / (1 + r)


def noise_ceiling(phi_a, phi_b, centred: bool = False) -> float:
    """The noise ceiling of maps that are the mean of the halves ``phi_a``/``phi_b`` ``[N, G²]``: the expected
    cosine between two independent such maps of the same image (Spearman–Brown of the mean half cosine);
    ``centred``: of the maps without their offset (what gates a reading)."""
    if centred:
        phi_a, phi_b = centre(phi_a), centre(phi_b)
    return float(spearman_brown(np.nanmean(split_half_cosine(phi_a, phi_b))))


def ceiling_summary(phi_a, phi_b, clusters, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """One model's noise ceiling pooled over images (halves ``[N, G²]``): ``centred`` (the gate's) with its
    cluster-bootstrap CI ``centred_ci`` at ``level``, ``plain`` (offset included: what shrinks Q's gap), and the
    ``n_images`` / ``n_clusters`` it rests on."""
    h = split_half_cosine(centre(phi_a), centre(phi_b))

    def pooled(v: np.ndarray) -> float:
        return float(spearman_brown(np.nanmean(v)))

    return {"centred": pooled(h), "centred_ci": cluster_bootstrap_ci(h, clusters, pooled, n_boot, level, seed),
            "plain": noise_ceiling(phi_a, phi_b), "n_images": len(h), "n_clusters": len(set(clusters))}


def disattenuate(cos, r1, r2) -> float:
    """A cosine between two maps with independent noise, corrected for their ceilings ``r1``, ``r2``:
    ``cos / √(r1 r2)``; NaN when a ceiling is not positive."""
    r = float(r1) * float(r2)
    return float(cos) / np.sqrt(r) if r > 0 else float("nan")


def q_corrected(q, baseline, r_d) -> float:
    """Q − baseline corrected for the detector map's noise: ``(Q − baseline) / √r_d``, ``r_d`` the *plain*
    ceiling (the gap lives in the centred map, but the unit norm that scales it includes the noise-free offset:
    E‖φ̂‖² = ‖φ‖² + E, so the gap shrinks by √(‖φ‖² / (‖φ‖² + E)) = √r_plain). Valid only where φ_d's noise is
    independent of φ_s's and φ_t's (maps estimated from coalitions of their own): correlated noise biases the
    gap itself, and dividing multiplies that bias. Noise in φ_s/φ_t then only blurs the mask towards a random
    one (whose Q is the baseline), so the corrected gap is a lower bound of its noise-free value in magnitude."""
    return float(q - baseline) / np.sqrt(r_d) if r_d > 0 else float("nan")


def cluster_bootstrap_ci(values, clusters, statistic: Callable[[np.ndarray], float] = np.nanmean,
                         n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over rows of ``values`` that resamples whole ``clusters``
    (e.g. the source identity of each image: frames of one video, and fakes of one source, are not
    independent), each drawn cluster bringing all its rows."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    labels = np.asarray(clusters)
    names = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in names]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for k in range(n_boot):
        pick = rng.integers(0, len(names), len(names))
        stats[k] = statistic(v[np.concatenate([members[i] for i in pick])])
    if np.isnan(stats).all():  # e.g. a corrected δ of maps with a zero ceiling
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.nanquantile(stats, alpha)), float(np.nanquantile(stats, 1 - alpha))


def _corrected_delta(rows: np.ndarray) -> float:
    """Corrected δ from per-image rows ``[cos(c23, raw), cos(c40, raw), h_raw, h_c23, h_c40]`` (``h``: the
    split-half cosines): each mean cosine divided by the mean over images of √(r₁ r₂), r the per-image
    ceilings of the two maps it compares (per image, so that images whose maps are noisier weigh as they
    attenuate; a ratio of means would overstate the ceiling of a heterogeneous image set)."""
    r_raw, r_23, r_40 = (spearman_brown(rows[:, j]) for j in (2, 3, 4))
    return 0.5 * (disattenuate(np.nanmean(rows[:, 0]), np.nanmean(np.sqrt(r_raw * r_23)) ** 2, 1.0)
                  + disattenuate(np.nanmean(rows[:, 1]), np.nanmean(np.sqrt(r_raw * r_40)) ** 2, 1.0))


def stability_with_noise(maps, halves, clusters, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """δ of one model's maps and what estimator noise and offsets make of it.

    ``maps``: ``(raw, c23, c40)``, each ``[N, G²]`` (row ``i`` the same frame at each compression);
    ``halves``: per compression the two independent half estimates ``(phi_a, phi_b)`` whose mean the map is,
    or ``None`` when the maps were made in one piece; ``clusters``: ``[N]`` labels the bootstrap resamples
    (CIs at ``level``).
    Returns the paper's ``delta`` and its cluster CI ``ci``, and ``centred`` / ``centred_ci``: δ of the maps
    without their offset (two maps that share only an offset have a plain δ near 1 and a centred one near 0).
    With halves also, of the centred maps, ``noise_ceiling`` (per compression), ``delta_ceiling`` (the centred δ
    that noise alone leaves of unchanged maps, ½[√(r_raw r_c23) + √(r_raw r_c40)]), ``corrected`` (each mean
    cosine divided by √(r₁ r₂) of the two maps it compares) and ``corrected_ci``; and ``noise_ceiling_plain``."""
    raw, c23, c40 = (_batch(m) for m in maps)
    per_image = stability_per_image(raw, c23, c40)
    centred = [centre(m) for m in (raw, c23, c40)]
    per_image_centred = stability_per_image(*centred)
    out = {"delta": float(per_image.mean()),
           "ci": cluster_bootstrap_ci(per_image, clusters, n_boot=n_boot, level=level, seed=seed),
           "centred": float(per_image_centred.mean()),
           "centred_ci": cluster_bootstrap_ci(per_image_centred, clusters, n_boot=n_boot, level=level, seed=seed)}
    if halves is None or any(h is None for h in halves):
        return out
    rows = _stability_rows(centred, halves)
    r = [float(spearman_brown(np.nanmean(rows[:, j]))) for j in (2, 3, 4)]
    out.update(noise_ceiling=dict(zip(("raw", "c23", "c40"), r)),
               noise_ceiling_plain={c: noise_ceiling(*h) for c, h in zip(("raw", "c23", "c40"), halves)},
               delta_ceiling=0.5 * (np.sqrt(r[0] * r[1]) + np.sqrt(r[0] * r[2])),
               corrected=_corrected_delta(rows),
               corrected_ci=cluster_bootstrap_ci(rows, clusters, _corrected_delta, n_boot=n_boot, level=level,
                                                 seed=seed))
    return out


def _stability_rows(centred, halves) -> np.ndarray:
    """Per image ``[cos(c23, raw), cos(c40, raw), h_raw, h_c23, h_c40]`` of centred maps ``(raw, c23, c40)``
    (``h``: split-half cosines of the centred halves): what :func:`_corrected_delta` reads."""
    c_raw, c_23, c_40 = centred
    split = [split_half_cosine(centre(a), centre(b)) for a, b in halves]
    return np.column_stack([[cosine(a, b) for a, b in zip(c_23, c_raw)], [cosine(a, b) for a, b in zip(c_40, c_raw)],
                            *split])


def stability_contrast(encoders, detector, clusters, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """H3's contrast: the lower of the encoders' noise-corrected centred δ minus the detector's, and its CI at
    ``level`` from a cluster bootstrap that resamples the images jointly (the same frames under every model).
    ``encoders``: ``[(maps, halves), ...]``, ``detector``: ``(maps, halves)``, each as
    :func:`stability_with_noise` takes them (halves required)."""
    rows = [_stability_rows([centre(_batch(m)) for m in maps], halves) for maps, halves in (*encoders, detector)]
    width = rows[0].shape[1]
    stacked = np.hstack(rows)

    def contrast(v: np.ndarray) -> float:
        parts = [_corrected_delta(v[:, k * width:(k + 1) * width]) for k in range(len(rows))]
        return float(np.min(parts[:-1]) - parts[-1])  # NaN in any part stays NaN (Python's min is order-bound)

    return float(contrast(stacked)), cluster_bootstrap_ci(stacked, clusters, contrast, n_boot, level, seed)


def family_level(tests: int, level: float = 0.95) -> float:
    """The confidence level of each of ``tests`` intervals whose readings hold together at ``level``
    (Bonferroni): ``1 − (1 − level) / tests``."""
    return 1 - (1 - level) / max(int(tests), 1)


def budget_for_ceiling(ceiling: float, budget: int, target: float = 0.9) -> float:
    """The budget at which a map whose noise ceiling is ``ceiling`` at ``budget`` evaluations reaches
    ``target``, assuming the estimator's noise energy falls as 1/budget (Monte Carlo and regression
    estimators alike): with S/E = r/(1−r), r(B) = 1 / (1 + (1−r)/r · budget/B). ``inf`` for a zero ceiling."""
    if ceiling <= 0:
        return float("inf")
    return float(budget) * (1 - ceiling) / ceiling * target / (1 - target)


CONFIDENT_BASELINE = 0.9  # an all-baseline image scored above this already "is" the explained class


def baseline_check(phi, value_empty, value_full, p_empty, p_full) -> dict:
    """What a baseline does to one model's maps (docs/design.md §1, "Baselines"): raw maps ``phi`` ``[N, G²]`` (in
    the game's units) and per image the game's value and the explained class's probability on the
    all-baseline and the whole image (``[N]`` each). Returns the means, the share of images whose all-baseline
    image gets the explained class with p > :data:`CONFIDENT_BASELINE`, the share of maps with Σφ < 0 and of
    cells with φ < 0, and ``warning`` with its reasons ``why`` where the removal is degenerate: the all-baseline
    image scores the explained class at least as high, on average, as the images explained (removing cells
    does not take the evidence away: Σφ = v(whole) − v(all-baseline) ≤ 0), Σφ < 0 in at least half the maps,
    or the all-baseline image already gets the explained class with mean p > :data:`CONFIDENT_BASELINE`."""
    phi = _batch(phi)
    p_empty = np.asarray(p_empty, dtype=np.float64)
    out = {"p_empty": float(np.mean(p_empty)), "p_full": float(np.mean(p_full)),
           "confident_share": float(np.mean(p_empty > CONFIDENT_BASELINE)),
           "value_empty": float(np.mean(value_empty)), "value_full": float(np.mean(value_full)),
           "negative_sum_share": float(np.mean(phi.sum(axis=1) < 0)), "negative_cell_share": float(np.mean(phi < 0)),
           "n_images": len(p_empty)}
    why = []
    if out["value_empty"] >= out["value_full"]:
        why.append(f"the all-baseline image scores {out['value_empty']:.2f}, the images explained "
                   f"{out['value_full']:.2f}")
    if out["negative_sum_share"] >= 0.5:
        why.append(f"Σφ < 0 in {100 * out['negative_sum_share']:.0f}% of the maps")
    if out["p_empty"] > CONFIDENT_BASELINE:
        why.append(f"p = {out['p_empty']:.2f} on the all-baseline image")
    out["warning"], out["why"] = bool(why), "; ".join(why) or None
    return out
