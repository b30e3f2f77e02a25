"""The rule proposer's words: the reason a move is tried (``explain``, the study's known
facts filled in with the config's numbers) and the observation on a finished node.
"""

from __future__ import annotations

from typing import Any

from inr_tune.config import Config
from inr_tune.search import strategies
from inr_tune.search.proposers.base import SearchState
from inr_tune.search.space import fmt_value
from inr_tune.search.tree import EARLY_STOPPED, Node, Tree
from inr_tune.search.verdict import describe_change, seed_noise

__all__ = ["arrow", "explain", "observation"]


def arrow(old: Any, new: Any) -> str:
    return f"{fmt_value(old)}→{fmt_value(new)}"


def explain(param: str, old: Any, new: Any, cfg: Config, state: SearchState) -> tuple[str, str]:
    """A one-sentence reason for changing ``param`` from ``old`` to ``new``, and ``expect``.

    The reasons are the study's known facts (higher ω needs lower lr, the best ω falls as
    frames grow, capacity limits C and S, …), filled in with this config's numbers.
    """
    f, frames = state.field, state.n_frames
    omega, lr, steps = cfg.model.omega, cfg.training.lr, cfg.training.total_steps
    up = isinstance(old, (int, float)) and isinstance(new, (int, float)) and new > old
    a = arrow(old, new)
    if param == "lr":
        prod = omega * float(new)
        if up:
            return (
                f"raising lr {a} should let {f} converge further within {fmt_value(steps)} steps; "
                f"higher ω needs lower lr, so ω·lr = {prod:.2g} at ω={fmt_value(omega)} tests the ceiling",
                "improve",
            )
        return (
            f"lowering lr {a} should steady training at ω={fmt_value(omega)} "
            f"(higher ω needs lower lr; ω·lr becomes {prod:.2g})",
            "improve",
        )
    if param == "omega":
        if up:
            return (
                f"raising ω {a} lets the SIREN resolve finer detail of {f} across {frames} frames; "
                f"at lr={fmt_value(lr)} ω·lr becomes {float(new) * lr:.2g}",
                "improve",
            )
        return (
            f"lowering ω {a}: the best ω falls as the frame count grows, and {frames} frames "
            "may want a smoother basis",
            "improve",
        )
    if param == "omega_hidden":
        hid = omega if new is None else float(new)
        note = "following ω" if new is None else "the SIREN paper keeps 30"
        return (
            f"omega_hidden {a} puts the hidden layers at ω={fmt_value(hid)} ({note}): the hidden ω "
            f"scales each step of the hidden weights (≈ ω·lr = {hid * lr:.2g}), not the init",
            "improve",
        )
    if param == "hidden_dim":
        if up:
            return (
                f"widening hidden_dim {a} adds capacity, the usual limit for {f} at {frames} frames",
                "improve",
            )
        return (
            f"narrowing hidden_dim {a} tests whether capacity is the limit; if R² holds, the config is cheaper",
            "same",
        )
    if param == "n_layers":
        if up:
            return (
                f"one more layer (n_layers {a}) adds depth; depth mattered for F at 400 frames",
                "improve",
            )
        return (f"one layer fewer (n_layers {a}) tests whether depth is the limit", "same")
    if param == "total_steps":
        if up:
            per = float(new) / max(1, frames)
            return (
                f"more steps (total_steps {a}, {per:.0f} per frame): if the loss was still falling, R² should rise",
                "improve",
            )
        return (f"fewer steps (total_steps {a}) tests for over-training and saves time", "same")
    if param == "batch_size":
        if up:
            return (
                f"batch_size {a}: more frames per step average the gradient",
                "improve",
            )
        return (
            f"batch_size {a}: fewer frames per step give more updates per frame seen",
            "improve",
        )
    if param in ("t_period", "xy_period"):
        axis = "time" if param == "t_period" else "space"
        way = "stretches" if up else "compresses"
        return (
            f"{param} {a} {way} the {axis} encoding, moving the frequency band ω={fmt_value(omega)} "
            f"covers along {axis}",
            "improve",
        )
    if param == "optimizer":
        return (f"optimizer {a}: another update rule may leave the current basin", "improve")
    if param == "schedule":
        return (f"schedule {a} changes how lr decays over {fmt_value(steps)} steps", "improve")
    if param == "loss":
        return (f"loss {a}: a robust loss discounts the outliers of heavy-tailed fields", "improve")
    if param == "grad_clip":
        return (f"gradient clipping {a} bounds the size of rare large updates", "improve")
    if param == "points_per_step":
        return (f"points per step {a} trades gradient noise against speed per step", "same")
    if param == "inr_type":
        return (
            f"inr_type {a}: the input encoding decides what the net must learn "
            "(siren_t won at 100 frames, siren_id failed with 9000 particles)",
            "improve",
        )
    return (f"{param} {a}", "improve")


def observation(tree: Tree, node: Node, classes: dict[str, float]) -> str:
    """``R² 0.99912 vs parent 0.99870: better by 0.00042 (+0.17 nines); omega 8→12``.

    Numbers only: the verdict on the hypothesis is computed once, at the block's end
    (``verdict.judge``), and shown beside this observation.
    """
    ref = tree.reference(node.id)
    mut = ", ".join(f"{k} {arrow(o, n)}" for k, (o, n) in node.mutation.items())
    tail = f"; {mut}" if mut else ""
    if node.r2 is None:
        reason = f" ({node.error})" if node.error else ""
        return f"{node.status}{reason}{tail}"
    grade = strategies.quality(node.r2, classes) if classes else ""
    if ref is None:
        return f"baseline R² {node.r2:.5f}" + (f" ({grade})" if grade else "")
    label = "parent" if node.parent is not None else "baseline"
    text = describe_change(node.r2, ref.r2, label)
    if node.status == EARLY_STOPPED:
        text = "stopped early; " + text
    if grade:
        text += f", {grade}"
    noise = seed_noise(tree, node.id)
    if node.strategy == "robustness-test" and noise is not None:
        text += f"; seed SD so far {noise:.3f} nines"
    return text + tail
