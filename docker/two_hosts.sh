#!/usr/bin/env bash
# A block on two "hosts" of one Linux machine: two network namespaces joined by a veth pair,
# each with its own IP address, and a worker whose dataset cache is a private tmpfs (its
# own mount namespace), so it cannot see the driver's data (the rest of the filesystem is
# still shared). Exercises what ray.cluster_utils cannot: Ray over real addresses with
# token authentication, the per-node dataset rebuild and content-hash check, and results
# sent through an object store (a local S3 server on the head), as between hosts with no
# shared disk.
#
#   sudo bash docker/two_hosts.sh [OUT]   # as root (namespaces); OUT default /tmp/inr_two_hosts
#
# Its clean-up runs `ray stop --force`, which stops every Ray process on the machine.
#
# Traffic stays inside the two namespaces this script makes; everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/inr_two_hosts}
HEAD_NS=inr-head WORKER_NS=inr-worker HEAD_IP=10.77.0.1 WORKER_IP=10.77.0.2
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=${RAY_AUTH_TOKEN:-$(python -c "import secrets; print(secrets.token_hex(32))")}
export AWS_ACCESS_KEY_ID=two-hosts AWS_SECRET_ACCESS_KEY=two-hosts-secret AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://$HEAD_IP:5000
export RAY_USAGE_STATS_ENABLED=0
rm -rf "$OUT" && mkdir -p "$OUT/head-data" "$OUT/worker-data"
in_head() { ip netns exec $HEAD_NS "$@"; }
in_worker() { ip netns exec $WORKER_NS "$@"; }

cleanup() {
  in_worker ray stop --force >/dev/null 2>&1 || true
  in_head ray stop --force >/dev/null 2>&1 || true
  [ -n "${S3_PID:-}" ] && { kill "$S3_PID"; wait "$S3_PID"; } 2>/dev/null || true
  ip netns del $HEAD_NS 2>/dev/null || true
  ip netns del $WORKER_NS 2>/dev/null || true
}
trap cleanup EXIT
cleanup

ip netns add $HEAD_NS
ip netns add $WORKER_NS
ip link add inr-veth0 type veth peer name inr-veth1
ip link set inr-veth0 netns $HEAD_NS
ip link set inr-veth1 netns $WORKER_NS
in_head ip addr add $HEAD_IP/24 dev inr-veth0
in_worker ip addr add $WORKER_IP/24 dev inr-veth1
for ns in $HEAD_NS $WORKER_NS; do
  ip netns exec $ns ip link set lo up
done
in_head ip link set inr-veth0 up
in_worker ip link set inr-veth1 up

echo "== S3 store on the head ($AWS_ENDPOINT_URL)"
ip netns exec $HEAD_NS moto_server -H $HEAD_IP -p 5000 >"$OUT/s3.log" 2>&1 &  # not via in_head: $! must be the server
S3_PID=$!
for _ in $(seq 50); do in_head python -c "import boto3; boto3.client('s3').list_buckets()" 2>/dev/null && break; sleep 0.2; done
in_head python -c "import boto3; boto3.client('s3').create_bucket(Bucket='results')"
in_worker python -c "import boto3; assert boto3.client('s3').list_buckets()['Buckets']" \
  || { echo "error: the worker namespace cannot reach $AWS_ENDPOINT_URL" >&2; exit 1; }

echo "== Ray head on $HEAD_IP, worker on $WORKER_IP (token auth)"
INR_TUNE_DATA="$OUT/head-data" in_head ray start --head --node-ip-address $HEAD_IP --port 6379 \
  --num-cpus 2 --include-dashboard false --disable-usage-stats >"$OUT/head.log" 2>&1
# The worker's dataset cache is a tmpfs in its own mount namespace: the driver's data path
# does not exist there, so the trainable must rebuild the default dataset and match its hash.
in_worker unshare -m --propagation private sh -c "
  mount -t tmpfs tmpfs '$OUT/head-data' && mount -t tmpfs tmpfs '$OUT/worker-data' &&
  INR_TUNE_DATA='$OUT/worker-data' ray start --address $HEAD_IP:6379 --node-ip-address $WORKER_IP \
    --num-cpus 2 --disable-usage-stats" >"$OUT/worker.log" 2>&1

echo "== a block of 4 trials from a driver on the head"
t0=$SECONDS
INR_TUNE_DATA="$OUT/head-data" in_head python -m inr_tune.block --address $HEAD_IP:6379 \
  --frames 400 --iterations 4 --parallel 4 --out "$OUT/run" --storage s3://results/two-hosts \
  --set training.total_steps=1500 --set training.max_minutes=2 | tee "$OUT/block.log"
echo "block: $((SECONDS - t0)) s"

echo "== checks"
in_head python - "$OUT/run" "$HEAD_IP" "$WORKER_IP" <<'EOF'
import json, sys
import boto3
run, head_ip, worker_ip = sys.argv[1:]
events = [json.loads(line) for line in open(f"{run}/journal.jsonl")]
done = [e for e in events if e["event"] == "node_completed"]
import ray
ray.init(address=f"{head_ip}:6379", log_to_driver=False)
ip_of = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
ips = sorted({ip_of.get(e["metrics"].get("ray_node_id"), "?") for e in done})
statuses = [e["status"] for e in done]
data = {ip_of.get(e["metrics"]["ray_node_id"]): (e["metrics"]["dataset"], e["metrics"]["content_hash"]) for e in done}
keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="results", Prefix="two-hosts/run/", MaxKeys=1000)["Contents"]}
trial_files = sorted(k for k in keys if k.split("/")[-2].startswith("iter_") and k.endswith(("/metrics.json", "/field.png")))
print(f"trials: {len(done)}, statuses {statuses}, ran on {ips}")
for ip, (path, digest) in sorted(data.items()):
    print(f"  dataset on {ip}: {path} (content hash {digest[:12]})")
print(f"objects in s3://results/two-hosts/run/: {len(keys)}, of them {len(trial_files)} trials/iter_NNN/metrics.json or field.png")
assert len(done) == 4 and set(statuses) == {"ok"}, statuses
assert ips == sorted([head_ip, worker_ip]), ips
assert "/worker-data/" in data[worker_ip][0] and "/head-data/" in data[head_ip][0], data
assert data[worker_ip][1] == data[head_ip][1], data
assert len(trial_files) == 8 and "two-hosts/run/journal.jsonl" in keys, trial_files
print("two hosts: OK")
EOF

echo "== a driver on the worker host with the wrong token"
set +e
wrong_token=$(python -c "import secrets; print(secrets.token_hex(32))")
msg=$(in_worker env RAY_AUTH_TOKEN="$wrong_token" INR_TUNE_DATA="$OUT/head-data" \
  python -m inr_tune.block --address $HEAD_IP:6379 --frames 400 --out "$OUT/refused" 2>&1 >/dev/null)
rc=$?
set -e
echo "exit $rc: $msg"
[ "$rc" = 2 ] && [ "$(printf '%s\n' "$msg" | wc -l)" = 1 ] && [ ! -e "$OUT/refused" ] \
  || { echo "error: expected one line, exit 2 and no run directory" >&2; exit 1; }
echo "wrong token refused: OK"
