"""Figures: the field panel of one trial, the exploration tree.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so importing this
module never changes the caller's backend (a notebook keeps its inline plots); saving a
PNG uses Agg through the figure's own canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["field_panel", "map_ssim", "save_figure"]

GRID = 64


def _rasterise(
    pos: np.ndarray, val: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bin means of ``val`` [N] at ``pos`` [N, 2] on a GRID² grid; (image, occupied mask)."""
    from scipy.ndimage import distance_transform_edt

    ij = np.clip(
        ((pos - lo) / np.maximum(hi - lo, 1e-12) * (GRID - 1)).round().astype(int), 0, GRID - 1
    )
    flat = ij[:, 1] * GRID + ij[:, 0]
    s = np.bincount(flat, weights=val, minlength=GRID * GRID)
    c = np.bincount(flat, minlength=GRID * GRID)
    occupied = (c > 0).reshape(GRID, GRID)
    img = np.where(c > 0, s / np.maximum(c, 1), 0.0).reshape(GRID, GRID)
    # Fill empty bins with the nearest occupied value so SSIM windows see no false edges.
    _, (ii, jj) = distance_transform_edt(~occupied, return_indices=True)
    return img[ii, jj], occupied


def map_ssim(pos: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> float:
    """SSIM of GT vs prediction rasterised at one frame, averaged over occupied bins.

    ``pos`` [N, 2]; ``gt``, ``pred`` [N]. data_range = max(gt) − min(gt).
    """
    from skimage.metrics import structural_similarity

    lo, hi = pos.min(axis=0), pos.max(axis=0)
    g, occupied = _rasterise(pos, gt, lo, hi)
    p, _ = _rasterise(pos, pred, lo, hi)
    rng = float(gt.max() - gt.min())
    if rng <= 1e-6 * max(float(np.abs(gt).max()), 1e-30):  # constant at this frame
        return 1.0 if np.allclose(gt, pred, rtol=1e-4, atol=1e-12) else 0.0
    _, smap = structural_similarity(g, p, data_range=rng, full=True)
    return float(smap[occupied].mean())


def field_panel(
    *,
    gt: np.ndarray,
    pred: np.ndarray,
    positions: np.ndarray,
    losses: Sequence[tuple[int, float]],
    components: Sequence[str],
    info: dict[str, Any],
    n_traces: int = 10,
    seed: int = 0,
) -> Figure:
    """Loss, traces, info, pred-vs-GT scatter, then GT/prediction maps per component.

    ``gt``, ``pred`` [T, N, C] raw units; ``positions`` [T, N, 2] or [N, 2].
    """
    t, n, c = gt.shape
    n_cols = 4
    map_rows = int(np.ceil(2 * c / n_cols))
    height = 4.2 * (1 + map_rows)
    fig = Figure(figsize=(17, height))
    # fixed margins instead of a layout engine: constrained layout measured every text
    # box twice per save (about a third of the panel's time), and the layout is the same
    # for every trial
    gs = fig.add_gridspec(
        1 + map_rows,
        n_cols,
        left=0.035,
        right=0.965,
        bottom=0.35 / height,
        top=1 - 0.35 / height,
        wspace=0.28,
        hspace=0.2,
    )
    rng = np.random.default_rng(seed)

    ax = fig.add_subplot(gs[0, 0])
    if losses:
        steps, values = np.asarray(losses, dtype=float).T
        ax.plot(steps, values, color="0.6", lw=0.8, label="loss")
        k = max(1, len(values) // 50)
        if len(values) > k:
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, color="tab:red", lw=1.5, label="smoothed")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set(title="training loss (standardised)", xlabel="step")

    ax = fig.add_subplot(gs[0, 1])
    pts = rng.choice(n, size=min(n_traces, n), replace=False)
    frames = np.arange(t)
    spread = 4 * (gt[:, :, 0].std() + 1e-12)  # once: the same for every trace
    for j, p in enumerate(pts):
        g, q = gt[:, p, 0], pred[:, p, 0]
        offset = j * spread
        ax.plot(
            frames, g - g.mean() + offset, color="tab:green", lw=1.2, label="GT" if j == 0 else None
        )
        ax.plot(
            frames,
            q - g.mean() + offset,
            color="k",
            lw=0.8,
            ls="--",
            label="prediction" if j == 0 else None,
        )
    ax.set(
        title=f"{len(pts)} traces of {components[0]} (centred, offset)", xlabel="frame", yticks=[]
    )
    ax.legend(fontsize=8, loc="upper right")

    ax = fig.add_subplot(gs[0, 2])
    ax.axis("off")
    lines = [f"{k}: {v}" for k, v in info.items()]
    ax.text(
        0.02,
        0.98,
        "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=10,
        bbox={"boxstyle": "round", "fc": "0.95", "ec": "0.7"},
        transform=ax.transAxes,
    )

    ax = fig.add_subplot(gs[0, 3])
    flat_g, flat_p = gt.reshape(-1), pred.reshape(-1)
    sel = rng.choice(flat_g.size, size=min(20000, flat_g.size), replace=False)
    # markers without an edge stroke (a third of the panel's drawing time), sized to the
    # dots the default 1.5 pt face-coloured edge drew
    ax.scatter(
        flat_g[sel], flat_p[sel], s=8.5, linewidths=0, alpha=0.3, color="tab:blue", rasterized=True
    )
    lo, hi = float(flat_g.min()), float(flat_g.max())
    ax.plot([lo, hi], [lo, hi], "r--", lw=1, label="y = x")
    gc = flat_g - flat_g.mean()
    slope = float((gc @ (flat_p - flat_p.mean())) / max(gc @ gc, 1e-30))
    intercept = float(flat_p.mean() - slope * flat_g.mean())
    ax.plot(
        [lo, hi],
        [intercept + slope * lo, intercept + slope * hi],
        color="tab:green",
        lw=1,
        label=f"fit: slope {slope:.4f}",
    )
    sse = float(((flat_p - flat_g) ** 2).sum())
    sst = float((gc**2).sum())
    r2 = 1 - sse / sst if sst > 0 else float("nan")
    ax.set(title=f"prediction vs GT (R² {r2:.5f})", xlabel="GT", ylabel="prediction")
    ax.legend(fontsize=8, loc="upper left")

    mid = t // 2
    pos = positions[mid] if positions.ndim == 3 else positions
    for ci in range(c):
        g, q = gt[mid, :, ci], pred[mid, :, ci]
        vmin, vmax = float(np.percentile(g, 1)), float(np.percentile(g, 99))
        pad = 1e-6 * max(abs(vmin), abs(vmax)) + 1e-12
        if vmax - vmin < pad:  # a constant component: centre it in the colour range
            vmin, vmax = vmin - pad, vmax + pad
        ssim = map_ssim(pos, g, q)
        for k, (vals, label) in enumerate(((g, "GT"), (q, "pred"))):
            cell = 2 * ci + k
            ax = fig.add_subplot(gs[1 + cell // n_cols, cell % n_cols])
            sc = ax.scatter(
                pos[:, 0],
                pos[:, 1],
                c=vals,
                s=12,  # no edge stroke: the size of the stroked s=4 dots
                linewidths=0,
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
                rasterized=True,
            )
            ax.set_aspect("equal")
            ax.set(xticks=[], yticks=[])
            ax.set_title(
                f"{label} {components[ci]} @ frame {mid}" + (f" · SSIM {ssim:.3f}" if k else ""),
                fontsize=10,
            )
            cbar = fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
            cbar.formatter.set_useOffset(False)
            cbar.ax.tick_params(labelsize=8)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 80) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically: ``fileio.write_durable``)."""
    import io

    from inr_tune.fileio import write_durable

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    write_durable(path, buf.getvalue())
    return Path(path)


def tree_plot(tree: Any, classes: dict[str, float], title: str = "") -> Figure:
    """The exploration tree: one column group per block, edges parent → child, R² labels.

    ``tree`` is an ``inr_tune.search.tree.Tree``; nodes are coloured by quality class.
    """
    from inr_tune.metrics import quality_class

    colours = {
        "excellent": "tab:green",
        "good": "yellowgreen",
        "moderate": "orange",
        "poor": "tab:red",
    }
    nodes = tree.nodes
    depth: dict[int, int] = {}
    for n in nodes:
        depth[n.id] = 0 if n.parent is None else depth[n.parent] + 1
    blocks = sorted({n.block for n in nodes})
    xs: dict[int, float] = {}
    x0 = 0.0
    for b in blocks:
        members = [n for n in nodes if n.block == b]
        ids = {n.id for n in members}
        order: list[int] = []
        stack = [n.id for n in reversed(members) if n.parent is None or n.parent not in ids]
        while stack:  # depth-first, children in id order
            node_id = stack.pop()
            order.append(node_id)
            stack += [c.id for c in reversed(tree.children(node_id)) if c.id in ids]
        for i, node_id in enumerate(order):
            xs[node_id] = x0 + i
        x0 += len(order) + 1.5
    width = max(6.0, 0.55 * x0)
    fig = Figure(
        figsize=(min(width, 40), 2 + 0.9 * (max(depth.values(), default=0) + 1)),
        layout="constrained",
    )
    ax = fig.add_subplot(1, 1, 1)
    for n in nodes:
        if n.parent is not None and n.parent in xs:
            ax.plot(
                [xs[n.parent], xs[n.id]],
                [-depth[n.parent], -depth[n.id]],
                color="0.6",
                lw=1,
                zorder=1,
            )
    for n in nodes:
        r2 = n.r2
        if n.pending:
            colour, label = "0.85", "…"
        elif n.status != "ok" and r2 is None:
            colour, label = "black", n.status
        else:
            label = f"{r2:.6f}" if r2 > 0.999 else f"{r2:.4f}"
            colour = colours.get(quality_class(r2, classes), "0.5")
        ax.scatter([xs[n.id]], [-depth[n.id]], s=260, color=colour, edgecolor="k", zorder=2)
        ax.text(xs[n.id], -depth[n.id], str(n.id), ha="center", va="center", fontsize=7, zorder=3)
        ax.text(xs[n.id], -depth[n.id] - 0.32, label, ha="center", va="top", fontsize=6)
    for b in blocks:
        bx = [xs[n.id] for n in nodes if n.block == b]
        ax.text((min(bx) + max(bx)) / 2, 0.6, f"block {b}", ha="center", fontsize=9)
    ax.set_ylim(-(max(depth.values(), default=0) + 1), 1.0)
    ax.axis("off")
    ax.set_title(title or "exploration tree (node id; R² below)")
    return fig
