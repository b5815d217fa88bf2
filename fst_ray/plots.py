"""Figures of the paper's analyses as PNG bytes (matplotlib, Agg). Inputs are plain arrays.

Maps are drawn with a diverging colour scale centred on 0 (red: the cell raises the explained logit,
blue: lowers it), upsampled over the image so cells line up with the face.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.ticker  # noqa: E402
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


def _limit(maps) -> float:
    """One colour scale for a set of maps: the largest |φ| among them (1 where all are zero)."""
    return float(max(np.abs(np.asarray(m, dtype=float)).max() for m in maps)) or 1.0


def _show_map(ax, image: np.ndarray, phi, title: str, lim: float, overlay: bool = True,
              readable: bool = True):
    """Draw one map over its image on the colour scale ±``lim``; an unreadable map is hatched and titled so."""
    g = _grid(phi)
    size = image.shape[0]
    if overlay:
        ax.imshow(image.mean(-1) if image.ndim == 3 else image, cmap="gray", extent=(0, size, size, 0))
    shown = ax.imshow(g, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.6 if overlay else 1.0, extent=(0, size, size, 0),
                      interpolation="nearest")
    if not readable:
        ax.add_patch(matplotlib.patches.Rectangle((0, 0), size, size, fill=False, hatch="///", edgecolor="0.3",
                                                  lw=0))
        title += "\nTOO NOISY TO READ"
    ax.set_title(title, fontsize=7, color="black" if readable else "tab:red")
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _ceiling_words(ceiling) -> tuple[str, bool]:
    """A panel's ceiling caption and readability from ``(centred ceiling, readable)`` or ``None``."""
    if ceiling is None:
        return "", True
    value, readable = ceiling
    return f"ceiling {value:.2f}", readable


def h1_rows(rows: Sequence[Mapping], title: str = "", ceilings: Mapping[str, tuple[float, bool]] | None = None
            ) -> bytes:
    """The paper's H1 figure: per explained image one row — image, φ_s, φ_t, φ_d, and the intersection
    mask M_τ with φ_d outside it. Each row: ``image`` (uint8 [S,S,3]), ``phi_s``, ``phi_t``, ``phi_d``
    (G² each), ``mask`` (bool G²), ``label`` (str), ``q`` (float). Each model's maps share one colour scale
    across the rows (a colour bar under each column); ``ceilings``: ``phi_s``/``phi_t``/``phi_d`` ->
    (centred noise ceiling, readable), shown in the titles, unreadable maps hatched."""
    fig, axes = plt.subplots(len(rows), 5, figsize=(11, 2.5 * len(rows) + 0.8), squeeze=False)
    names = {"phi_s": "φ_s (source encoder)", "phi_t": "φ_t (target encoder)", "phi_d": "φ_d (detector)"}
    lims = {k: _limit([r[k] for r in rows]) for k in names}
    shown = {}
    for ax_row, r in zip(axes, rows):
        ax_row[0].imshow(r["image"])
        ax_row[0].set_title(r["label"].replace(" (", "\n("), fontsize=7)
        ax_row[0].set_xticks([])
        ax_row[0].set_yticks([])
        for j, (k, name) in enumerate(names.items(), start=1):
            words, readable = _ceiling_words((ceilings or {}).get(k))
            shown[k] = _show_map(ax_row[j], r["image"], r[k], f"{name}\n{words}".strip(), lims[k], readable=readable)
        outside = np.where(np.asarray(r["mask"]).reshape(-1), 0.0, np.asarray(r["phi_d"], float).reshape(-1))
        _, readable = _ceiling_words((ceilings or {}).get("phi_d"))
        _show_map(ax_row[4], r["image"], outside, f"φ_d outside M_τ\nQ = {r['q']:.3f}", lims["phi_d"],
                  readable=readable)
    for j, k in enumerate(names, start=1):
        bar = fig.colorbar(shown[k], ax=list(axes[:, j]) + (list(axes[:, 4]) if k == "phi_d" else []),
                           orientation="horizontal", fraction=0.04, pad=0.02, label="φ (unit-norm map)")
        bar.ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))  # a one-column bar holds few labels
    if title:
        fig.suptitle(title, fontsize=9)
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
                     title: str = "", ceilings: Mapping[str, Mapping[str, tuple[float, bool]]] | None = None) -> bytes:
    """H3: rows = explained models, columns = raw / c23 / c40; ``images[compression]`` is the frame,
    ``maps[model][compression]`` its φ. Each model's row shares one colour scale (its colour bar on the right);
    ``ceilings[model][compression]``: (centred noise ceiling, readable), in the titles, unreadable maps hatched."""
    comps = list(images)
    models = list(maps)
    fig, axes = plt.subplots(len(models) + 1, len(comps), figsize=(2.4 * len(comps) + 0.8, 2.2 * (len(models) + 1)),
                             squeeze=False)
    for j, c in enumerate(comps):
        axes[0, j].imshow(images[c])
        axes[0, j].set_title(c, fontsize=9)
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
    for i, model in enumerate(models, start=1):
        lim = _limit(maps[model].values())
        for j, c in enumerate(comps):
            words, readable = _ceiling_words((ceilings or {}).get(model, {}).get(c))
            shown = _show_map(axes[i, j], images[c], maps[model][c], f"{model}, {c}\n{words}".strip(), lim,
                              readable=readable)
        fig.colorbar(shown, ax=list(axes[i, :]), fraction=0.04, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(fig)


def method_maps(images: Mapping[str, np.ndarray], maps: Mapping[str, Sequence[Sequence[float]]],
                title: str = "") -> bytes:
    """One model's maps of the same frames by several attribution methods: the frames (``key -> image``) on top,
    one row per method (``maps[method]``: one φ per frame, in ``images``' order), each row on its own colour scale
    (different methods have different units)."""
    keys = list(images)
    fig, axes = plt.subplots(len(maps) + 1, len(keys), figsize=(2.2 * len(keys) + 0.8, 2.0 * (len(maps) + 1)),
                             squeeze=False, layout="constrained")
    for j, k in enumerate(keys):
        axes[0, j].imshow(images[k])
        axes[0, j].set_title(k, fontsize=7)
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
    for i, (method, phis) in enumerate(maps.items(), start=1):
        lim = _limit(phis)
        for j, k in enumerate(keys):
            shown = _show_map(axes[i, j], images[k], phis[j], method if j == 0 else "", lim)
        fig.colorbar(shown, ax=list(axes[i, :]), fraction=0.04, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(fig)


def delta_bars(rows: Mapping[str, Mapping[str, Mapping]], title: str = "") -> bytes:
    """H3's δ as it is read, one panel per method: per model its noise-corrected centred δ with its CI (a bar;
    none where its maps are too noisy to read), its measured centred δ (●) and the centred δ that estimator
    noise alone leaves of maps that do not change at all (—, *noise alone*): a measured δ at that level means
    compression changed nothing the maps can show. ``rows[method][model]``: ``corrected``, ``corrected_ci``,
    ``centred``, ``noise_alone`` (floats or ``None``), ``readable`` (bool; ``None``: noise not measured)."""
    methods = list(rows)
    top = 1.5  # the axis stops here: a corrected δ's CI from a few images can reach far above 1 (arrows mark it)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.0 * len(methods), 3.4), squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods):
        models = list(rows[method])
        for x, model in enumerate(models):
            r = rows[method][model]
            if r["readable"] and r["corrected"] is not None:
                lo, hi = r["corrected_ci"]
                shown = min(r["corrected"], top)
                ax.bar(x, shown, color="tab:blue", alpha=0.6, capsize=3, label="corrected δ (CI)",
                       yerr=np.clip([[shown - lo], [min(hi, top) - shown]], 0, None))  # a CI may miss its estimate
                if hi > top:
                    ax.annotate(f"{hi:.1f}", (x, top), xytext=(x + 0.1, top - 0.1), ha="left", fontsize=6,
                                arrowprops={"arrowstyle": "->", "lw": 0.6})
            else:
                ax.text(x, top - 0.05, "too noisy" if r["readable"] is False else "noise not measured", rotation=90,
                        ha="center", va="top", fontsize=7, color="tab:red")
            ax.plot(x, r["centred"], "ko", ms=4, label="measured δ (centred)")
            if r["noise_alone"] is not None:
                ax.plot(x, r["noise_alone"], "k_", ms=18, mew=2, label="noise alone")
        ax.axhline(1, color="grey", lw=0.5, ls=":")
        ax.set_ylim(min(0.0, *(r["centred"] for r in rows[method].values())) - 0.05, top)
        ax.set_xticks(range(len(models)), models, fontsize=7, rotation=20)
        ax.set_title(method, fontsize=9)
    axes[0, 0].set_ylabel("δ (centred maps)")
    legend = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), fontsize=7, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.08))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
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
