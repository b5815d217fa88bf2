"""Figures of the paper's analyses as PNG bytes (matplotlib, Agg). Inputs are plain arrays.

Maps are drawn with a diverging colour scale centred on 0 (red: the cell raises the explained logit,
blue: lowers it), upsampled over the image so cells line up with the face.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(phi) -> np.ndarray:
    a = np.asarray(phi, dtype=float)
    g = int(round(np.sqrt(a.size)))
    return a.reshape(g, g)


def _show_map(ax, image: np.ndarray, phi, title: str, overlay: bool = True) -> None:
    g = _grid(phi)
    lim = float(np.abs(g).max()) or 1.0
    size = image.shape[0]
    if overlay:
        ax.imshow(image.mean(-1) if image.ndim == 3 else image, cmap="gray", extent=(0, size, size, 0))
    ax.imshow(g, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.6 if overlay else 1.0, extent=(0, size, size, 0),
              interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def h1_rows(rows: Sequence[Mapping], title: str = "") -> bytes:
    """The paper's H1 figure: per explained image one row — image, φ_s, φ_t, φ_d, and the intersection
    mask M_τ with φ_d outside it. Each row: ``image`` (uint8 [S,S,3]), ``phi_s``, ``phi_t``, ``phi_d``
    (G² each), ``mask`` (bool G²), ``label`` (str), ``q`` (float)."""
    fig, axes = plt.subplots(len(rows), 5, figsize=(10, 2.1 * len(rows)), squeeze=False)
    for ax_row, r in zip(axes, rows):
        ax_row[0].imshow(r["image"])
        ax_row[0].set_title(r["label"], fontsize=7)
        ax_row[0].set_xticks([])
        ax_row[0].set_yticks([])
        _show_map(ax_row[1], r["image"], r["phi_s"], "φ_s (source encoder)")
        _show_map(ax_row[2], r["image"], r["phi_t"], "φ_t (target encoder)")
        _show_map(ax_row[3], r["image"], r["phi_d"], "φ_d (detector)")
        outside = np.where(np.asarray(r["mask"]).reshape(-1), 0.0, np.asarray(r["phi_d"], float).reshape(-1))
        _show_map(ax_row[4], r["image"], outside, f"φ_d outside M_τ (Q={r['q']:.3f})")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def q_curves(taus: Sequence[float], curves: Mapping[str, Mapping[str, Sequence[float]]],
             bands: Mapping[str, Mapping[str, Sequence[Sequence[float]]]] | None = None,
             ylabel: str = "Q_τ", title: str = "") -> bytes:
    """One panel per method: Q against τ for each named series (e.g. paired, unpaired, baseline), with
    optional CI bands ``[[lo, hi], ...]`` per τ."""
    methods = list(curves)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 2.8), squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods):
        for name, ys in curves[method].items():
            line, = ax.plot(taus, ys, marker="o", ms=3, label=name, ls="--" if "baseline" in name else "-")
            band = (bands or {}).get(method, {}).get(name)
            if band is not None:
                lo, hi = np.asarray(band, float).T
                ax.fill_between(taus, lo, hi, color=line.get_color(), alpha=0.2)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("τ")
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def compression_maps(images: Mapping[str, np.ndarray], maps: Mapping[str, Mapping[str, Sequence[float]]],
                     title: str = "") -> bytes:
    """H3: rows = encoders, columns = raw / c23 / c40; ``images[compression]`` is the frame,
    ``maps[encoder][compression]`` its φ."""
    comps = list(images)
    encoders = list(maps)
    fig, axes = plt.subplots(len(encoders) + 1, len(comps), figsize=(2.2 * len(comps), 2.2 * (len(encoders) + 1)),
                             squeeze=False)
    for j, c in enumerate(comps):
        axes[0, j].imshow(images[c])
        axes[0, j].set_title(c, fontsize=9)
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
        for i, enc in enumerate(encoders, start=1):
            _show_map(axes[i, j], images[c], maps[enc][c], f"{enc}, {c}")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def table(rows: Sequence[Sequence], header: Sequence[str], title: str = "") -> bytes:
    """A small table as a figure (for the δ table next to its maps)."""
    fig, ax = plt.subplots(figsize=(1.6 * len(header), 0.35 * (len(rows) + 2)))
    ax.axis("off")
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    tab = ax.table(cellText=cells, colLabels=list(header), loc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)


def faithfulness(curves: Mapping[str, Mapping[str, Sequence[float]]],
                 shares: Mapping[str, Mapping[str, Sequence[float | None]]], value: str = "logit",
                 title: str = "") -> bytes:
    """Maps against ground truth. Left panels, one per model: mean deletion and insertion curves in the map's
    order (solid) and a random order (dashed) over the share of cells removed/added (``curves[model][kind]``,
    kinds ``deletion``, ``insertion``, ``deletion_random``, ``insertion_random``). Last panel: per model the share
    of positive mass in the mask and on the face, each beside its chance (``shares[model]["mask"|"face"] =
    (share, chance)``, ``None`` where not measured)."""
    models = list(curves)
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(2.9 * (len(models) + 1), 2.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for kind, colour in (("deletion", "tab:blue"), ("insertion", "tab:red")):
            ys = curves[model].get(kind)
            if not ys:
                continue
            xs = np.linspace(0, 1, len(ys))
            ax.plot(xs, ys, color=colour, label=f"{kind}, map order")
            ax.plot(xs, curves[model][f"{kind}_random"], color=colour, ls="--", label=f"{kind}, random")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("share of cells removed / added")
    axes[0, 0].set_ylabel(f"explained {value}")
    axes[0, 0].legend(fontsize=6)
    ax = axes[0, -1]
    x = np.arange(len(models))
    for offset, (region, colour) in zip((-0.2, 0.2), (("mask", "tab:purple"), ("face", "tab:green"))):
        got = [shares.get(m, {}).get(region) or (np.nan, np.nan) for m in models]
        ax.bar(x + offset, [g[0] for g in got], width=0.35, color=colour, label=f"φ+ in {region}")
        ax.scatter(x + offset, [g[1] for g in got], color="black", marker="_", s=200, zorder=3)
    ax.set_xticks(x, models, fontsize=7, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_title("positive mass (bar) vs chance (—)", fontsize=9)
    ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)
