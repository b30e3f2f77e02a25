"""Fidelity per byte: the trials' Pareto front beside the classical baselines.

After each block and at the end of a run the driver prints ``format_front`` (the front
of (compression ratio, held-out R²) with PCA, ZFP and SZ3 at the same ratios) and
``comparison_sentence`` (one plain sentence, also when the INR loses), and saves
``pareto_figure`` as ``pareto.png`` (and in TensorBoard). The figure is drawn on a bare
matplotlib ``Figure``: nothing here changes the caller's matplotlib backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inr_tune.fileio import write_durable
from inr_tune.search.seeds import best_config
from inr_tune.search.tree import Node, Tree, pareto_front

__all__ = [
    "POSITION_VARIANTS",
    "baseline_at",
    "best_in_budget",
    "block_baselines",
    "comparison_sentence",
    "fmt_r2",
    "format_front",
    "pareto_figure",
    "reads_positions",
    "report_fidelity",
    "write_baselines_csv",
]

#: Variants that read particle positions to decode; the ratio does not count them
#: (they are stored with the data), the baselines need nothing else.
POSITION_VARIANTS = ("siren_txy", "ngp", "factorized")
METHODS = ("pca", "zfp", "sz3")


def reads_positions(config: dict[str, Any]) -> bool:
    """True for a config whose model reads particle positions to decode (siren_txy, ngp,
    factorized with a SIREN basis): the ratio does not count them."""
    model = config.get("model", {})
    if model.get("inr_type") == "factorized":
        return model.get("basis") == "siren"
    return model.get("inr_type") in POSITION_VARIANTS


def _nines(r2: float) -> float:
    from inr_tune.baselines import nines

    return nines(r2)


def baseline_at(
    baselines: Any, ratio: float, method: str | None = None
) -> tuple[float, str] | None:
    """(R², setting) of the best baseline (or of ``method``) at ``ratio``, held-out frames
    when the window has them; None when none reaches that ratio."""
    if baselines is None:
        return None
    if method is not None:
        points = [p for p in baselines.points if p.method == method]
        if not points:
            return None
        baselines = dataclasses.replace(baselines, points=points)
    return baselines.best_at(ratio, holdout=bool(baselines.holdout_every))


def best_in_budget(nodes: Iterable[Node], min_ratio: float | None) -> Node | None:
    """The node with the highest R² among those at ratio ≥ ``min_ratio`` (all when None)."""
    ok = [
        n
        for n in nodes
        if n.r2 is not None
        and n.ratio is not None
        and (min_ratio is None or n.ratio >= min_ratio - 1e-9)
    ]
    return max(ok, key=lambda n: (n.r2, -n.id), default=None)


def fmt_r2(r2: float | None) -> str:
    """R² with enough decimals to show its nines (0.9999996, not 1.000000)."""
    if r2 is None:
        return "-"
    digits = 6 if r2 < 0.99999 else min(10, 3 + math.ceil(_nines(r2)))
    return f"{r2:.{digits}f}"


def format_front(nodes: Iterable[Node], baselines: Any, r2_label: str = "held-out R²") -> str:
    """The Pareto front as a text table with each baseline's R² at the node's ratio."""
    front = pareto_front(nodes)
    if not front:
        return "Pareto front: no finished trial with a ratio and an R²"
    head = f"{'node':>5} {'variant':<11} {'ratio':>8} {r2_label:>12}"
    head += "".join(f" {m.upper() + ' R²':>12}" for m in METHODS) + "  nines vs best"
    lines = ["Pareto front (ratio ↑, " + r2_label + " ↑) beside the baselines at the same ratio:"]
    lines.append(head)
    for n in front:
        row = f"{n.id:>5} {n.config['model']['inr_type']:<11} {n.ratio:>7.1f}× {fmt_r2(n.r2):>12}"
        for m in METHODS:
            got = baseline_at(baselines, n.ratio, m)  # type: ignore[arg-type]
            row += f" {fmt_r2(got[0] if got else None):>12}"
        best = baseline_at(baselines, n.ratio)  # type: ignore[arg-type]
        row += f"  {_nines(n.r2) - _nines(best[0]):+.2f}" if best else "  -"  # type: ignore[arg-type]
        lines.append(row)
    if baselines is not None and baselines.unavailable:
        for method, reason in baselines.unavailable.items():
            lines.append(f"  {method}: unavailable ({reason})")
    return "\n".join(lines)


def comparison_sentence(
    nodes: Iterable[Node],
    baselines: Any,
    min_ratio: float | None,
    r2_label: str = "held-out R²",
    tree: Tree | None = None,
) -> str:
    """One plain sentence: the best INR inside the budget against the best baseline there.

    With ``tree``, the best INR is the config with the best mean over its seed reruns
    (``seeds.best_config``), given as mean ± SD, and the gap uses that mean; without,
    the single best node.
    """
    nodes = list(nodes)
    best = best_in_budget(nodes, min_ratio)
    if best is None:
        where = f" at ≥ {min_ratio:g}×" if min_ratio else ""
        return f"no INR finished{where}: nothing to compare with the baselines"
    ratio, r2 = float(best.ratio), float(best.r2)  # type: ignore[arg-type]
    r2_text, level = fmt_r2(r2), _nines(r2)
    if tree is not None:
        inside = [n for n in nodes if n.id in tree and best_in_budget([n], min_ratio)]
        runs = best_config(tree, inside)
        if runs is not None:
            best = runs.original
            ratio = float(best.ratio)  # type: ignore[arg-type]
            r2_text, level = runs.r2_text(), runs.mean
    variant = best.config["model"]["inr_type"]
    text = f"best INR at {ratio:.0f}× (node {best.id}, {variant}): {r2_label} {r2_text}"
    base = baseline_at(baselines, ratio)
    if base is None:
        reason = "not computed" if baselines is None else "none reaches this ratio"
        return text + f"; classical baselines at {ratio:.0f}×: {reason}"
    gap = level - _nines(base[0])
    verdict = "ahead by" if gap > 0 else "behind by"
    if abs(gap) < 0.005:
        verdict = "level, within"
    text += f"; {base[1]} at {ratio:.0f}×: {fmt_r2(base[0])} — the INR is {verdict} {abs(gap):.2f} nines"
    if reads_positions(best.config):
        text += " (it also reads the particle positions stored with the data, not counted)"
    return text


def pareto_figure(nodes: Iterable[Node], baselines: Any, title: str = "") -> Any:
    """Trials as points coloured by variant, baselines as curves; log ratio × nines of R²."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    holdout = bool(baselines is not None and baselines.holdout_every)
    if baselines is not None:
        for m, style in zip(METHODS, ("-", "--", ":"), strict=True):
            xy = [
                (p.ratio, _nines(p.holdout_r2 if holdout and p.holdout_r2 is not None else p.r2))
                for p in baselines.front(m, holdout)
                if p.ratio > 0
            ]
            if xy:
                ax.plot(*zip(*xy, strict=True), style, color="0.35", label=m.upper())
    nodes = [n for n in nodes if n.r2 is not None and n.ratio is not None]
    variants = sorted({n.config["model"]["inr_type"] for n in nodes})
    cmap = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, v in enumerate(variants):
        pts = [(n.ratio, _nines(n.r2)) for n in nodes if n.config["model"]["inr_type"] == v]
        ax.scatter(*zip(*pts, strict=True), color=cmap[i % len(cmap)], label=v, zorder=3, s=28)
    front = pareto_front(nodes)
    if front:
        ax.plot(
            [n.ratio for n in front], [_nines(n.r2) for n in front], "-", color="tab:red", lw=0.8
        )
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (values / parameters)")
    ax.set_ylabel(("held-out " if holdout else "") + "R² in nines, −log10(1 − R²)")
    ax.set_title(title or "fidelity per byte")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def write_baselines_csv(windows: list[tuple[str, int, Any]], path: Any) -> None:
    """``baselines.csv`` of a run: every window's baseline points, with field and frames."""
    import csv

    rows = []
    for field, n_frames, baselines in windows:
        for row in baselines.to_rows():
            rows.append({"field": field, "n_frames": n_frames, **row})
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_durable(Path(path), buf.getvalue())


def block_baselines(
    dataset: str, root: Any, run_dir: Path, windows: list[Any], quiet: bool = False
) -> Any:
    """PCA/ZFP/SZ3 curves of the block's window (cached per dataset hash and window),
    added to ``windows`` and to ``baselines.csv``; None, with the reason printed (unless
    ``quiet``), when they cannot be computed: the block still runs."""
    from inr_tune.baselines import load_or_compute

    d = root.data
    t0 = time.perf_counter()
    try:
        baselines = load_or_compute(dataset, d.field, d.n_frames, d.offset, d.holdout)
    except Exception as err:  # a baseline must never stop the search
        if not quiet:
            print(f"  baselines unavailable: {type(err).__name__}: {err}")
        return None
    missing = "; ".join(f"{m} unavailable ({why})" for m, why in baselines.unavailable.items())
    if not quiet:
        print(
            f"  baselines (PCA, ZFP, SZ3) of {d.field}@{d.n_frames}: {len(baselines.points)} "
            f"points in {time.perf_counter() - t0:.1f} s" + (f"; {missing}" if missing else "")
        )
    windows.append((d.field, d.n_frames, baselines))
    write_baselines_csv(windows, run_dir / "baselines.csv")
    return baselines


def report_fidelity(
    run_dir: Path,
    nodes: list[Node],
    baselines: Any,
    budget: Any,
    title: str,
    tb: bool = True,
    tree: Tree | None = None,
    quiet: bool = False,
) -> str:
    """Print the Pareto front beside the baselines and the comparison sentence (unless
    ``quiet``); save pareto.png, and the same figure in TensorBoard under trials/pareto
    when ``tb``: one record per ``title``, written once (``--resume`` writes it only when
    a kill came first) and moved into place whole."""
    holdout = any(n.metrics.get("holdout_r2") is not None for n in nodes)
    label = "held-out R²" if holdout else "R²"
    min_ratio = budget.min_ratio if budget is not None and budget.active else None
    sentence = f"{title}: " + comparison_sentence(nodes, baselines, min_ratio, label, tree)
    if not quiet:
        print(format_front(nodes, baselines, label))
        print(sentence)
    fig = pareto_figure(nodes, baselines, title=f"{run_dir.name}: {title}")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    write_durable(run_dir / "pareto.png", png.getvalue())
    if not tb:  # trials live in an object store: nothing else goes under trials/ here
        return sentence
    key = "".join(c if c.isalnum() else "_" for c in title)
    final = run_dir / "trials" / "pareto"
    if list(final.glob(f"events.out.tfevents.*.{key}")):
        return sentence
    with contextlib.suppress(Exception):  # TensorBoard is a convenience copy
        import shutil

        from torch.utils.tensorboard import SummaryWriter

        staging = run_dir / "trials" / ".pareto.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        with SummaryWriter(str(staging), filename_suffix=f".{key}") as writer:
            writer.add_figure("pareto", fig, global_step=len(nodes), close=False)
        final.mkdir(parents=True, exist_ok=True)
        for f in staging.glob("events.out.tfevents.*"):
            f.replace(final / f.name)
        shutil.rmtree(staging, ignore_errors=True)
    return sentence
