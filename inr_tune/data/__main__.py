"""``python -m inr_tune.data``: generate, import and inspect field datasets; baselines."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from inr_tune.cli import EXIT_OK, run_cli
from inr_tune.data.defaults import DEFAULTS, ensure_default_dataset
from inr_tune.data.store import open_dataset
from inr_tune.errors import DataError

__all__ = ["main"]


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _summary_line(path: Path, seconds: float) -> str:
    ds = open_dataset(path)
    fields = " ".join(f"{f}[{len(c)}]" for f, c in ds.components.items())
    size = _dir_size(path) / 2**20
    return (
        f"wrote {ds.kind} dataset {path} ({ds.n_frames} frames × {ds.n_points} points; "
        f"fields {fields}; {size:.1f} MiB) in {seconds:.1f} s"
    )


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise DataError(f"{out} already exists; pass --force to replace it or choose another --out")


def _mpm_params(sets: list[str]) -> Any:
    """Physical constants of the simulator with ``--set params.KEY=VALUE`` applied."""
    from inr_tune.data.mpm import MPMParams

    params = MPMParams()
    names = [f.name for f in dataclasses.fields(MPMParams)]
    for item in sets:
        key, sep, text = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or section != "params" or name not in names:
            raise DataError(
                f"--set {item!r}: expected params.KEY=VALUE with KEY one of: {', '.join(names)}"
            )
        try:
            value = yaml.safe_load(text)
            current = getattr(params, name)
            value = type(current)(value) if not isinstance(current, tuple) else tuple(value)
        except (yaml.YAMLError, TypeError, ValueError):
            raise DataError(
                f"--set {item!r}: {text!r} is not a valid value for params.{name}"
            ) from None
        params = dataclasses.replace(params, **{name: value})
    return params


def _cmd_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out, args.force)
    t0 = time.perf_counter()
    if args.kind == "mpm":
        from inr_tune.data.mpm_scene import generate_mpm

        if args.particles_per_disc < 1 or args.frames < 1 or args.substeps_per_frame < 1:
            raise DataError("--particles-per-disc, --frames and --substeps-per-frame must be ≥ 1")
        if args.skip_substeps < 0:
            raise DataError("--skip-substeps must be ≥ 0")
        generate_mpm(
            out,
            particles_per_disc=args.particles_per_disc,
            frames=args.frames,
            substeps_per_frame=args.substeps_per_frame,
            skip_substeps=args.skip_substeps,
            seed=args.seed,
            device=args.device,
            params=_mpm_params(args.set),
            progress=not args.quiet,
        )
    else:
        from inr_tune.data.flyvis import generate_flyvis

        if args.set:
            raise DataError("generate flyvis takes no --set; use --frames, --seed and --noise")
        generate_flyvis(
            out, frames=args.frames, seed=args.seed, noise=args.noise, progress=not args.quiet
        )
    print(_summary_line(out, time.perf_counter() - t0))
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from inr_tune.data.importers import import_flyvis, import_mpm

    out = Path(args.out)
    _check_out(out, args.force)
    t0 = time.perf_counter()
    if args.command == "import-mpm":
        import_mpm(args.src, out, frame_dt=args.frame_dt, progress=not args.quiet)
    else:
        import_flyvis(args.src, out, progress=not args.quiet)
    print(_summary_line(out, time.perf_counter() - t0))
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    ds = open_dataset(args.path)
    info = ds.summary()
    if args.hash:
        info["content_hash"] = ds.content_hash()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['path']}")
    print(f"  kind      {info['kind']}")
    print(f"  frames    {info['n_frames']} (frame_dt {info['frame_dt']:g})")
    print(f"  points    {info['n_points']}")
    print("  fields")
    for name, f in info["fields"].items():
        rng = f["range"] or []
        parts = [
            f"{c} [{lo:.4g}, {hi:.4g}]" for c, (lo, hi) in zip(f["components"], rng, strict=False)
        ]
        print(
            f"    {name:<9} {len(f['components'])} components: "
            + ", ".join(parts or f["components"])
        )
    gen = info.get("generator") or {}
    if gen:
        params = ", ".join(f"{k}={v}" for k, v in (gen.get("parameters") or {}).items())
        print(f"  generator {gen.get('name')}: {params}")
    if args.hash:
        print(f"  content   {info['content_hash']}")
    return EXIT_OK


def _cmd_default(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    path = ensure_default_dataset(args.kind, progress=not args.quiet)
    print(f"default {args.kind} dataset: {path} (ready in {time.perf_counter() - t0:.1f} s)")
    return EXIT_OK


def _cmd_baselines(args: argparse.Namespace) -> int:
    from inr_tune.baselines import format_table, load_or_compute, write_csv
    from inr_tune.data.split import holdout_frames

    try:
        holdout_frames(0, args.holdout)
    except ValueError as err:
        raise DataError(f"--holdout {args.holdout}: {err}") from None
    t0 = time.perf_counter()
    if args.path == "default":
        path = ensure_default_dataset("mpm", progress=not args.quiet)
    else:
        path = Path(args.path)
    field = args.field
    if field is None:
        fields = open_dataset(path).fields
        if len(fields) != 1:
            raise DataError(f"pass --field; valid fields of {path.name}: {', '.join(fields)}")
        field = fields[0]
    b = load_or_compute(
        path, field, args.frames, args.offset, args.holdout, args.cache_dir, refresh=args.refresh
    )
    print(format_table(b))
    if args.out:
        write_csv(b, args.out)
    counts = ", ".join(f"{m} {len(b.curve(m))}" for m in b.methods) or "none"
    missing = "".join(f"; {m} unavailable" for m in b.unavailable)
    verb = f"read from cache {b.cache_path}" if b.from_cache else "computed"
    cache = f"; cached at {b.cache_path}" if b.cache_path and not b.from_cache else ""
    out = f"; wrote {args.out}" if args.out else "; no CSV written (use --out FILE.csv)"
    print(
        f"{len(b.points)} baseline points ({counts}{missing}) of {field}@{args.frames} of "
        f"{path}: {verb} in {time.perf_counter() - t0:.1f} s{cache}{out}"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inr_tune.data",
        description=(
            "Generate, import and inspect the field datasets inr_tune trains on (zarr), and "
            "measure classical compressors on them (baselines)."
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="simulate a dataset (mpm or flyvis)")
    gsub = gen.add_subparsers(dest="kind", required=True, metavar="KIND")
    d = DEFAULTS["mpm"]
    mpm = gsub.add_parser(
        "mpm",
        help="2D MLS-MPM: 9 discs of liquid, jelly and snow (fields F, C, S, Jp)",
        description="Simulate the discs_3types MLS-MPM scene and store every frame's fields.",
    )
    mpm.add_argument("--out", required=True, help="output dataset directory (.zarr)")
    mpm.add_argument(
        "--particles-per-disc",
        type=int,
        default=d["particles_per_disc"],
        help="particles per disc; 1000 gives the reference 9000 (default %(default)s)",
    )
    mpm.add_argument(
        "--frames", type=int, default=d["frames"], help="frames to record (default %(default)s)"
    )
    mpm.add_argument(
        "--substeps-per-frame",
        type=int,
        default=d["substeps_per_frame"],
        help="substeps of dt=7.5e-5 per frame; 1 = the reference data (default %(default)s)",
    )
    mpm.add_argument(
        "--skip-substeps",
        type=int,
        default=d["skip_substeps"],
        help="substeps simulated before frame 0, not stored (default %(default)s)",
    )
    mpm.add_argument("--seed", type=int, default=d["seed"], help="scene seed (default %(default)s)")
    mpm.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)"
    )
    fly = gsub.add_parser(
        "flyvis",
        help="fly-eye photoreceptor stimulus on the 1736-neuron hex lattice",
        description="Natural-like grey video sampled on the 217-column hex lattice, 8 types per column.",
    )
    fly.add_argument("--out", required=True, help="output dataset directory (.zarr)")
    fly.add_argument(
        "--frames",
        type=int,
        default=DEFAULTS["flyvis"]["frames"],
        help="frames of 20 ms (default %(default)s)",
    )
    fly.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    fly.add_argument("--noise", type=float, default=0.0, help="additive noise σ (default 0: off)")
    for q in (mpm, fly):
        q.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="params.KEY=VALUE",
            help="override a physical constant, e.g. params.gravity=0 (repeatable)",
        )
        q.add_argument("--force", action="store_true", help="replace --out if it exists")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    imp = sub.add_parser("import-mpm", help="convert the older tool's x_list [T, N, 21] .npy")
    imp.add_argument("src", metavar="X_LIST.npy")
    imp.add_argument(
        "--frame-dt", type=float, default=7.5e-5, help="time per frame (default 7.5e-5)"
    )
    imf = sub.add_parser(
        "import-flyvis", help="convert the older tool's zarr v2 stimulus [T, 13741]"
    )
    imf.add_argument("src", metavar="STIMULUS.zarr")
    for q in (imp, imf):
        q.add_argument("--out", required=True, help="output dataset directory (.zarr)")
        q.add_argument("--force", action="store_true", help="replace --out if it exists")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    info = sub.add_parser("info", help="print kind, frames, points, fields and value ranges")
    info.add_argument("path", metavar="PATH")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument(
        "--hash", action="store_true", help="also compute the content hash (reads all data)"
    )

    base = sub.add_parser(
        "baselines",
        help="classical compressors (PCA, ZFP, SZ3) on a field window: R² against ratio",
        description=(
            "Compress the training frames of one field window with truncated PCA, ZFP (zfpy) "
            "and SZ3 (pysz), reconstruct the held-out frames by interpolation in time, and "
            "print R², held-out R², PSNR and max error against the compression ratio "
            "(T·N·C values / stored float32 values, as for an INR). Results are cached per "
            "dataset content, field and window under $INR_TUNE_DATA/baselines."
        ),
    )
    base.add_argument("path", metavar="PATH", help="dataset directory, or 'default' (MPM)")
    base.add_argument("--field", help="field name, e.g. F, Jp, C, S, stimulus")
    base.add_argument(
        "--frames", type=int, default=400, help="window length in frames (default %(default)s)"
    )
    base.add_argument(
        "--offset", default="center", help="center, start or a first frame (default center)"
    )
    base.add_argument(
        "--holdout",
        type=int,
        default=10,
        help="hold out frames k with k %% H == H // 2 (0 = none, else ≥ 2; default %(default)s)",
    )
    base.add_argument("--out", metavar="FILE.csv", help="also write the points as CSV")
    base.add_argument("--cache-dir", help="cache directory (default $INR_TUNE_DATA/baselines)")
    base.add_argument("--refresh", action="store_true", help="recompute even if cached")
    base.add_argument("--quiet", action="store_true", help="no progress bar")

    dflt = sub.add_parser("default", help="build (once) and print the path of a default dataset")
    dflt.add_argument("kind", nargs="?", default="mpm", choices=("mpm", "flyvis"))
    dflt.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "generate": _cmd_generate,
        "import-mpm": _cmd_import,
        "import-flyvis": _cmd_import,
        "info": _cmd_info,
        "default": _cmd_default,
        "baselines": _cmd_baselines,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
