"""--storage: a directory or an fsspec URL, down to a block writing into a local S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inr_tune.errors import InrTuneError
from inr_tune.fileio import open_bytes
from inr_tune.runner.storage import resolve_storage
from tests.helpers import block_args, completed, run_block, write_synthetic_mpm


def test_directory_and_url_give_the_same_layout(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r1"
    default = resolve_storage(None, run)
    assert default.url is None and default.trial_dir(3) == str(
        run.resolve() / "trials" / "iter_003"
    )
    assert default.ray_storage() == {"storage_path": str(run.resolve() / "ray")}

    shared = resolve_storage(str(tmp_path / "shared"), run)
    assert shared.trial_dir(12) == str(
        (tmp_path / "shared" / "r1" / "trials" / "iter_012").resolve()
    )

    url = f"file://{tmp_path}/store/"
    remote = resolve_storage(url, run)
    assert remote.url == f"file://{tmp_path}/store/r1"
    assert remote.trial_dir(7) == f"file://{tmp_path}/store/r1/trials/iter_007"
    assert (tmp_path / "store" / "r1" / "trials").is_dir()  # made (and so checked) up front
    ray = remote.ray_storage()
    assert ray["storage_path"] == f"{tmp_path}/store/r1"
    assert type(ray["storage_filesystem"]).__name__ == "PyFileSystem"

    run.mkdir(parents=True)
    (run / "journal.jsonl").write_text('{"event": "run_start"}\n')
    (run / "analysis.md").write_text("# r1\n")
    remote.upload_reports()
    assert (tmp_path / "store" / "r1" / "journal.jsonl").read_text() == '{"event": "run_start"}\n'
    assert open_bytes(f"{remote.url}/analysis.md") == b"# r1\n"


def test_bad_storage_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InrTuneError, match=r"^--storage nosuch://b/x: Protocol not known: nosuch$"):
        resolve_storage("nosuch://b/x", tmp_path / "r")
    with pytest.raises(OSError):
        open_bytes(f"file://{tmp_path}/missing.png")
    with pytest.raises(OSError):
        open_bytes(str(tmp_path / "missing.png"))


@pytest.mark.slow
def test_block_writes_its_results_to_an_object_store(tmp_path: Path, s3: dict[str, str]) -> None:
    import boto3

    dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=50)
    out = tmp_path / "run"
    sets = [
        f"data.path={dataset}",
        "training.total_steps=120",
        "training.eval_every=60",
        "model.hidden_dim=16",
        "model.n_layers=1",
    ]
    r = run_block(
        *block_args(
            "--out", str(out), "--storage", "s3://results/inr", sets=sets, iterations=2, parallel=2
        ),
        env=s3,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trials in s3://results/inr/run/trials" in r.stdout
    assert not (out / "trials").exists()  # nothing of the trials went to the driver's disk

    client = boto3.client("s3")
    objects = {
        o["Key"]: client.get_object(Bucket="results", Key=o["Key"])["Body"].read()
        for o in client.list_objects_v2(Bucket="results")["Contents"]
    }
    base = "inr/run/"
    for name in ("journal.jsonl", "analysis.md", "memory.md", "ucb_scores.txt", "tree.png"):
        assert base + name in objects, name
    assert objects[base + "journal.jsonl"] == (out / "journal.jsonl").read_bytes()
    done = completed(out)
    assert [e["status"] for e in done] == ["ok", "ok"]
    for e in done:
        trial = f"{base}trials/iter_{e['node_id']:03d}/"
        for name in ("config.yaml", "metrics.json", "field.png"):
            assert trial + name in objects, trial + name
        assert any(k.startswith(trial) and "tfevents" in k for k in objects)
        # The driver recorded where the field panel is, and can read it back (the LLM
        # proposer shows these to Claude) as soon as the trial is reported.
        png = e["metrics"]["field_png"]
        assert png == f"s3://results/{trial}field.png"
        assert open_bytes(png) == objects[trial + "field.png"]
        assert json.loads(objects[trial + "metrics.json"])["final_r2"] == e["metrics"]["final_r2"]
    secret = s3["AWS_SECRET_ACCESS_KEY"].encode()
    assert not [k for k, v in objects.items() if secret in v], "a credential reached the store"
