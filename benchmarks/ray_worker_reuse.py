"""Can a block's first trials start in Ray workers that imported torch and Lightning early?

A fresh Ray worker spends seconds importing torch and Lightning before its first trial
trains (issue 14 §5: 11–13 s each with four workers on two cores). That time could only
leave the run if the imports happened earlier, in workers the trials then run in. This
checks, on this machine's Ray, whether Tune's trial actors are ever placed in

- ``prestarted``: the idle workers Ray starts when the driver connects;
- ``warm-tasks``: workers that ran tasks importing torch and Lightning, under the same
  ``runtime_env`` Tune gives its trial actors (``ray.tune.execution.class_cache``);
- ``setup-hook``: workers that ran a job-level ``worker_process_setup_hook`` importing
  them before the trials started (the check prints when the hook ran).

Each check starts its own local Ray (2 CPUs), runs 4 trivial trials of 0.5 CPU and prints
which worker processes they ran in. About two minutes in all; Tune's results go to a
temporary directory and nothing is kept.
``python benchmarks/ray_worker_reuse.py [--checks prestarted,warm-tasks,setup-hook]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

CHECKS = ("prestarted", "warm-tasks", "setup-hook")


def _hook() -> None:  # runs in every worker of the job, at its start
    import lightning  # noqa: F401
    import torch  # noqa: F401

    with open(os.environ["REUSE_HOOK_LOG"], "a") as fh:
        fh.write(f"{os.getpid()} {time.time():.3f}\n")


def _idle_workers() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ray::IDLE"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _trial_pids(storage: str) -> tuple[list[int], float]:
    from ray import tune

    def trainable(config: dict) -> None:
        tune.report({"pid": os.getpid()})

    t0 = time.time()
    results = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 0.5}),
        param_space={"x": tune.grid_search([0, 1, 2, 3])},
        tune_config=tune.TuneConfig(max_concurrent_trials=4),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    ).fit()
    return sorted(r.metrics["pid"] for r in results), t0


def run_check(check: str, storage: str) -> str:
    """Run one check in this process (its own Ray) and return its one-line verdict."""
    import ray
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE

    env = dict(DEFAULT_ENV_VARS)
    env.update({k: os.environ[k] for k in ENV_VARS_TO_PROPAGATE if k in os.environ})
    kwargs: dict = {}
    if check == "setup-hook":
        kwargs["runtime_env"] = {"env_vars": env, "worker_process_setup_hook": _hook}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        early: set[int] = set()
        if check == "prestarted":
            time.sleep(8)  # let Ray start its idle workers
            early = _idle_workers()
        elif check == "warm-tasks":

            @ray.remote(num_cpus=0.5, runtime_env={"env_vars": env})
            def warm() -> int:
                import lightning  # noqa: F401
                import torch  # noqa: F401

                return os.getpid()

            early = set(ray.get([warm.remote() for _ in range(4)]))
        else:
            time.sleep(15)  # time enough for idle workers to run the hook, if they do
        pids, t_fit = _trial_pids(storage)
        if check == "setup-hook":
            with open(os.environ["REUSE_HOOK_LOG"]) as fh:
                runs = [line.split() for line in fh if line.strip()]
            before = sorted(int(p) for p, t in runs if float(t) < t_fit)
            return (
                f"setup-hook: the hook ran in {len(runs)} worker(s), {len(before)} of them "
                f"before the trials started; trials ran in {pids}"
            )
        reused = sorted(set(pids) & early)
        return (
            f"{check}: {len(early)} early worker(s) {sorted(early)}; trials ran in {pids}; "
            f"{len(reused)} trial(s) in an early worker"
        )
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checks", default=",".join(CHECKS), help="comma list of " + ", ".join(CHECKS)
    )
    parser.add_argument("--one", choices=CHECKS, help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["REUSE_HOOK_LOG"] = os.path.join(tmp, "hook.log")
            open(os.environ["REUSE_HOOK_LOG"], "w").close()
            print(run_check(args.one, os.path.join(tmp, "ray")), flush=True)
        return 0
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        print(f"unknown check(s) {unknown}; choose from {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    import ray

    print(f"Ray {ray.__version__}, {os.cpu_count()} CPUs")
    verdicts = []
    for i, check in enumerate(checks, 1):
        print(f"[{i}/{len(checks)}] {check} …", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--one", check], capture_output=True, text=True
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith(f"{check}:")]
        verdicts.append(lines[-1] if lines else f"{check}: failed ({out.stderr.strip()[-300:]})")
        print("   ", verdicts[-1], flush=True)
    print("summary (nothing kept):")
    for v in verdicts:
        print("  " + v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
