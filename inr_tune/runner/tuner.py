"""The Tune wiring of one block: the searcher adapter, the trainable, resources, ASHA."""

from __future__ import annotations

from typing import Any

from inr_tune.runner.actor_cache import keep_actors
from inr_tune.runner.cluster import trial_resources

__all__ = ["run_block_on_ray"]


def run_block_on_ray(
    session: Any,
    ctx: Any,
    *,
    cpus: int,
    gpus: int,
    parallel: int,
    dataset: str,
    content_hash: str,
    live: Any,
    reports: Any,
    storage: Any,
    kind: str = "mpm",
    early_stop: str = "none",
) -> None:
    from ray import tune

    from inr_tune.runner.searcher import UCBTreeSearcher
    from inr_tune.runner.trainable import train_node

    threads = max(1, cpus // parallel)
    resources = trial_resources(cpus, gpus, parallel)
    remote = storage.url is not None

    def trial_config(node: Any) -> dict[str, Any]:
        # an attempt of a run that was killed: its files go, TensorBoard shows one run
        storage.clear_trial(
            node.id, ray_name=f"block_{node.block}/b{node.block}_iter_{node.id:03d}"
        )
        return {
            "node_id": node.id,
            "block": node.block,
            "cfg": node.config,
            # With an object store a trial writes into its Ray working directory, which
            # Ray uploads to ``result_dir``; with a directory it writes there directly.
            "out_dir": None if remote else storage.trial_dir(node.id),
            "result_dir": storage.trial_dir(node.id),
            "dataset": dataset,
            "content_hash": content_hash,
            "kind": kind,
            "threads": threads,
            "tb_name": f"b{node.block}_iter_{node.id:03d}",
            # evaluation snapshots keep a trial's panel and metrics if a scheduler stops it;
            # without one no trial is stopped early, so they would only cost time
            "snapshots": early_stop == "asha",
        }

    def on_done(node: Any) -> None:
        live.done(node)
        reports.write(ctx, session.block, session.ucb_c)

    searcher = UCBTreeSearcher(session, trial_config, on_start=live.start, on_done=on_done)

    class Progress(tune.Callback):
        """Each running trial's intermediate reports go to the live display."""

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            node_id = (trial.config or {}).get("node_id")
            if node_id is not None and "metrics_json" not in result:
                live.progress(int(node_id), result)

    scheduler = None
    if early_stop == "asha":
        from ray.tune.schedulers import ASHAScheduler

        t = session.root_config.training
        # Trials report R² every eval_every steps; ASHA compares them at rungs of steps
        # on ``score``: the held-out R² (all held-out frames, the frames every node is
        # scored on) when the window holds frames out, else R² over ≤ 64 sampled frames.
        scheduler = ASHAScheduler(
            time_attr="step",
            metric="score",
            mode="max",
            max_t=10 * max(t.total_steps, 1),  # mutations may raise total_steps
            grace_period=max(t.eval_every, t.total_steps // 8),
            reduction_factor=2,
        )
    tuner = tune.Tuner(
        tune.with_resources(train_node, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,
            max_concurrent_trials=parallel,
            # a worker imports torch and Lightning once per block, not once per trial
            # (with keep_actors below: Ray alone keeps one worker between batches)
            reuse_actors=True,
            scheduler=scheduler,
            trial_name_creator=lambda t: f"b{t.config['block']}_iter_{t.config['node_id']:03d}",
            trial_dirname_creator=(
                (lambda t: f"iter_{t.config['node_id']:03d}")
                if remote
                else (lambda t: f"b{t.config['block']}_iter_{t.config['node_id']:03d}")
            ),
        ),
        run_config=tune.RunConfig(
            # With an object store Ray's trial directories are the trials' own.
            name="trials" if remote else f"block_{session.block}",
            verbose=0,
            callbacks=[Progress()],
            failure_config=tune.FailureConfig(max_failures=0),
            sync_config=tune.SyncConfig(sync_artifacts=remote, sync_period=60),
            **storage.ray_storage(),
        ),
    )
    with keep_actors(parallel):  # every worker of a batch serves the next batch too
        tuner.fit()
