"""Importing the package's figure code never changes the caller's matplotlib backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_imports_keep_the_callers_backend_and_figures_still_save(tmp_path: Path) -> None:
    code = f"""
import matplotlib
matplotlib.use("svg")
import inr_tune.plots, inr_tune.reports.pareto, inr_tune.training.callbacks, inr_tune.block
from inr_tune.search.tree import Tree
from inr_tune.config import Config
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
tree = Tree()
node = tree.add(None, Config(), {{}}, "baseline", "h", 1)
tree.complete(node.id, "ok", {{"final_r2": 0.99}})
fig = inr_tune.plots.tree_plot(tree, {{"good": 0.9}})
inr_tune.plots.save_figure(fig, {str(tmp_path / "tree.png")!r})
assert matplotlib.get_backend() == "svg"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "tree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
