"""Per-field quality on the default data: one good CPU config per field, R² against a goal.

    python benchmarks/field_quality.py                       # all five fields, 5 min each
    python benchmarks/field_quality.py --fields F Jp --quick # ~20 s smoke run per field
    python benchmarks/field_quality.py --write-md benchmarks/results/field_quality_cpu.md

Each field trains its preset ``configs/presets/cpu_<field>_<frames>.yaml`` (F, Jp, C, S of
the default MPM dataset at 400 frames; the fly-eye ``stimulus`` of the default flyvis
dataset at 1000 frames) through ``inr_tune.training.fit.run_trial`` on ``--threads`` CPU
threads. The presets are tuned for a 5-minute budget: ``training.max_minutes`` is the hard
cap and ``total_steps`` is chosen so the cosine schedule ends inside it. ``--minutes M``
scales ``total_steps`` by M / 5 and sets ``max_minutes = M`` (``--quick`` = 20 s), so a
shorter run still finishes its schedule.

Goals (issue 3, section 6; 2 CPU cores, ≤ 5 minutes per field): final_r2 ≥ 0.995 for F and
Jp, ≥ 0.99 for C and S, ≥ 0.95 for the stimulus. The table (printed, and written as
``field_quality.md`` + ``field_quality.json`` in ``--out``) has, per field: the variant,
the config (width×layers, ω, lr, steps, batch, points per step), final_r2, kinograph_R2,
kinograph_SSIM, training time, steps done and whether the goal was met. Each field's run
directory (metrics.json, field.png, checkpoint, TensorBoard) is ``--out/<field>``.

Timings depend on the machine and on whatever else runs on it; "(cut)" in a row means the
wall-clock cap stopped training before the schedule ended. ``--threads`` defaults to 1: on
an idle 2-core box two torch threads were no faster per step for these small models (siren_t
128×3, batch 8: 2.9 ms with 2 threads, 2.1 ms with 1), and while other processes held both
cores two threads waited on each other, 10–100× slower per step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "configs" / "presets"

#: field → (preset frames, goal on final_r2, dataset kind)
FIELDS: dict[str, tuple[int, float, str]] = {
    "F": (400, 0.995, "mpm"),
    "Jp": (400, 0.995, "mpm"),
    "C": (400, 0.99, "mpm"),
    "S": (400, 0.99, "mpm"),
    "stimulus": (1000, 0.95, "flyvis"),
}
PRESET_MINUTES = 5.0
QUICK_SECONDS = 20.0


def preset_path(field: str) -> Path:
    return PRESETS / f"cpu_{field}_{FIELDS[field][0]}.yaml"


def config_summary(cfg: Any) -> str:
    m, t = cfg.model, cfg.training
    omega = f"ω {m.omega:g}"
    if m.omega_hidden is not None and m.omega_hidden != m.omega:
        omega += f"/{m.omega_hidden:g}"
    extra = []
    if m.t_period != 1.0:
        extra.append(f"T_period {m.t_period:g}")
    if m.xy_period != 1.0:
        extra.append(f"xy_period {m.xy_period:g}")
    if t.schedule != "cosine":
        extra.append(t.schedule)
    if t.loss != "mse":
        extra.append(t.loss)
    if not t.grad_clip:
        extra.append("no clip")
    pts = "all" if t.points_per_step is None else str(t.points_per_step)
    s = (
        f"{m.hidden_dim}×{m.n_layers}, {omega}, lr {t.lr:.3g}, {t.total_steps} steps, "
        f"batch {t.batch_size}, pts {pts}"
    )
    return s + ("".join(f", {e}" for e in extra))


def build_config(field: str, minutes: float, sets: list[str]) -> Any:
    from inr_tune.config_files import load_config
    from inr_tune.data.defaults import ensure_default_dataset

    path = preset_path(field)
    base = load_config(path)
    budget = base.training.max_minutes or PRESET_MINUTES
    steps = max(1, round(base.training.total_steps * minutes / budget))
    over = [f"training.max_minutes={minutes!r}", f"training.total_steps={steps}"]
    if base.data.path is None and FIELDS[field][2] != "mpm":
        over.append(f"data.path={ensure_default_dataset(FIELDS[field][2])}")
    return load_config(path, [*over, *sets])


def fmt(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "–"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| field | frames | variant | config | final_r2 | kinograph_R2 | kinograph_SSIM "
        "| training_time (s) | steps done | goal | met |"
    )
    lines = [head, "|" + " --- |" * 11]
    for r in rows:
        steps = f"{r.get('steps_done', 0)}/{r.get('total_steps', 0)}"
        if r.get("budget_cut"):
            steps += " (cut)"
        met = "yes" if r["met"] else ("no" if r["status"] == "ok" else r["status"])
        lines.append(
            f"| {r['field']} | {r['n_frames']} | {r['inr_type']} | {r['config']} "
            f"| {fmt(r.get('final_r2'), '.6f')} | {fmt(r.get('kinograph_R2'), '.6f')} "
            f"| {fmt(r.get('kinograph_SSIM'), '.4f')} | {fmt(r.get('training_time'), '.1f')} "
            f"| {steps} | ≥ {r['goal']:g} | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--fields", nargs="+", default=list(FIELDS), choices=list(FIELDS))
    p.add_argument(
        "--minutes",
        type=float,
        default=PRESET_MINUTES,
        help="wall-clock cap per field; total_steps scales with it (default 5)",
    )
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_SECONDS:g} s per field")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: as fast as 2 for these models, and robust on a busy box)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra override applied to every field's preset (repeatable)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output dir (default runs/field_quality/<time>)"
    )
    p.add_argument(
        "--write-md", type=Path, default=None, help="also write the markdown report to this path"
    )
    a = p.parse_args(argv)
    minutes = QUICK_SECONDS / 60.0 if a.quick else a.minutes
    out = a.out or ROOT / "runs" / "field_quality" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from inr_tune.errors import InrTuneError
    from inr_tune.training.fit import run_trial

    rows: list[dict[str, Any]] = []
    for field in a.fields:
        try:
            cfg = build_config(field, minutes, a.sets)
        except InrTuneError as err:
            print(f"{field}: {err}", file=sys.stderr)
            return 2
        summary = config_summary(cfg)
        print(f"== {field}: {cfg.model.inr_type} {summary}, max {minutes:.3g} min", flush=True)
        t0 = time.perf_counter()
        m = run_trial(cfg, out / field, num_threads=a.threads)
        goal = FIELDS[field][1]
        r2 = m.get("final_r2")
        row = {
            "field": field,
            "n_frames": m.get("n_frames", cfg.data.n_frames),
            "inr_type": cfg.model.inr_type,
            "config": summary,
            "preset": str(preset_path(field).relative_to(ROOT)),
            "goal": goal,
            "met": bool(m["status"] == "ok" and isinstance(r2, float) and r2 >= goal),
            "wall_s": time.perf_counter() - t0,
            **{
                k: m.get(k)
                for k in (
                    "status",
                    "error",
                    "final_r2",
                    "r2_components",
                    "kinograph_R2",
                    "kinograph_SSIM",
                    "training_time",
                    "steps_done",
                    "total_steps",
                    "steps_per_second",
                    "budget_cut",
                    "total_params",
                    "compression_ratio",
                )
            },
        }
        rows.append(row)
        print(
            f"   {field}: final_r2 {fmt(r2, '.5f')}  kinograph R2 {fmt(m.get('kinograph_R2'), '.5f')}"
            f"  SSIM {fmt(m.get('kinograph_SSIM'), '.4f')}  {fmt(m.get('training_time'), '.1f')} s"
            f"  {m.get('steps_done')} steps ({fmt(m.get('steps_per_second'), '.0f')}/s)"
            f"  {m['status']}{' ' + str(m['error']) if m.get('error') else ''}"
            f"  goal ≥ {goal:g}: {'met' if row['met'] else 'NOT met'}",
            flush=True,
        )

    cmd = "python benchmarks/field_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    md = "\n".join(
        [
            "# Field quality on the default data (CPU)",
            "",
            f"Command: `{cmd.strip()}`  ",
            f"Date: {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.machine()}, torch "
            f"{torch.__version__}, threads={a.threads}, cap {minutes:.3g} min per field.",
            "",
            table(rows),
            "",
            f"Goals met: {sum(r['met'] for r in rows)}/{len(rows)}.",
            "",
        ]
    )
    print()
    print(table(rows))
    (out / "field_quality.md").write_text(md)
    (out / "field_quality.json").write_text(json.dumps(rows, indent=2, default=str))
    if a.write_md:
        a.write_md.parent.mkdir(parents=True, exist_ok=True)
        a.write_md.write_text(md)
    print(f"\nwrote {out / 'field_quality.md'}" + (f" and {a.write_md}" if a.write_md else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
