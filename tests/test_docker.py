"""docker/: the compose file and the Dockerfile, checked as files (no Docker engine in CI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"

# `${VAR}`, `${VAR:?message}` or `${VAR?message}`: the value comes from the environment.
FROM_ENV = r"\$\{%s(:?\?[^}]*)?\}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", "KEY"]
        return {k: v for k, _, v in (item.partition("=") for item in env)}
    return dict(env)


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:  # "[host_ip:]host:container[/proto]"
            ports.add(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _requirement(name: str) -> Requirement:
    reqs = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    return next(r for r in reqs if r.name == name)


def _instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _args() -> dict[str, str]:
    args = {}
    for keyword, rest in _instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip().strip("\"'")
    return args


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def _pip_installs() -> list[tuple[int, list[str]]]:
    """(instruction index, words after `pip install`) for every pip install in a RUN."""
    args = _args()
    found = []
    for i, (keyword, rest) in enumerate(_instructions()):
        if keyword != "RUN":
            continue
        lexer = shlex.shlex(_expand(rest, args), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for word in [*lexer, "&&"]:
            if word in ("&&", "||", ";", "|"):  # one shell command ends here
                if command[:1] and command[0].endswith("pip") and command[1:2] == ["install"]:
                    found.append((i, command[2:]))
                elif command[:4] and command[1:4] == ["-m", "pip", "install"]:
                    found.append((i, command[4:]))
                command = []
            else:
                command.append(word)
    return found


# ----------------------------------------------------------------------------- compose
def test_compose_has_head_and_gpu_workers(services: dict[str, dict[str, Any]]) -> None:
    assert {"head", "worker"} <= set(services)
    head, worker = _command(services["head"]), _command(services["worker"])
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert "--port=6379" in head and "--dashboard-host=0.0.0.0" in head
    assert worker[:2] == ["ray", "start"] and "--address=head:6379" in worker
    assert "--block" in worker
    assert "replicas" in services["worker"]["deploy"]  # N workers: replicas or --scale


def test_worker_reserves_one_nvidia_gpu(services: dict[str, dict[str, Any]]) -> None:
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and d.get("count") == 1 and "gpu" in d.get("capabilities", [])
        for d in devices
    ), devices


def test_head_publishes_gcs_and_dashboard(services: dict[str, dict[str, Any]]) -> None:
    assert {6379, 8265} <= _container_ports(services["head"])


def test_nodes_share_memory_and_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name in ("head", "worker"):
        svc = services[name]
        shm = str(svc.get("shm_size", ""))
        assert re.fullmatch(r"\d+\s*[gG][bB]?", shm), f"{name}: shm_size {shm!r} (Ray needs GBs)"
        mounts = {}
        for v in svc.get("volumes") or []:
            source, target = str(v).split(":")[:2]
            mounts[target] = source
        assert {"/data", "/runs"} <= set(mounts), f"{name}: volumes {mounts}"
        assert mounts["/data"] in declared and mounts["/runs"] in declared  # named, shared
        assert _environment(svc).get("INR_TUNE_DATA") == "/data"


def test_token_auth_comes_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        env = _environment(svc)
        assert env.get("RAY_AUTH_MODE") == "token", f"{name}: RAY_AUTH_MODE must be token"
        token = str(env.get("RAY_AUTH_TOKEN"))
        assert re.fullmatch(FROM_ENV % "RAY_AUTH_TOKEN", token), (
            f"{name}: RAY_AUTH_TOKEN must be taken from the environment, not {token!r}"
        )


def test_api_key_only_on_the_driver(services: dict[str, dict[str, Any]]) -> None:
    keys = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
    for name, svc in services.items():
        env = _environment(svc)
        for key in keys:
            if name != "driver":
                assert key not in env, f"{name} must not get {key}: only the driver calls the API"
            elif key in env:  # passed through from the shell, never a literal
                assert env[key] is None or re.fullmatch(FROM_ENV % key, str(env[key]))


# ----------------------------------------------------------------------------- Dockerfile
def test_dockerfile_installs_this_package_from_pyproject() -> None:
    steps = _instructions()
    copied = [i for i, (k, rest) in enumerate(steps) if k == "COPY" and "pyproject.toml" in rest]
    source = [
        i for i, (k, rest) in enumerate(steps) if k == "COPY" and "inr_tune" in rest.split()[0]
    ]
    assert copied and source, "the Dockerfile must COPY pyproject.toml and inr_tune/"
    local = [i for i, words in _pip_installs() if "." in words or ".[" in " ".join(words)]
    assert any(i > copied[0] for i in local), "no `pip install .` after COPY pyproject.toml"
    assert any(i > source[0] for i in local), "no `pip install .` after COPY inr_tune/"


def test_dockerfile_pins_the_torch_of_pyproject() -> None:
    (line,) = [
        x for x in (ROOT / "constraints.txt").read_text().splitlines() if x.startswith("torch==")
    ]
    pin = line.split("==", 1)[1].strip()
    assert _requirement("torch").specifier.contains(pin), (
        "constraints.txt's torch is outside pyproject's range"
    )
    pins = {
        word.split("==", 1)[1]
        for _, words in _pip_installs()
        for word in words
        if word.startswith("torch==")
    }
    assert pins == {pin}, f"Dockerfile pins torch {pins or 'nowhere'}, constraints.txt {pin}"


def test_dockerfile_ray_satisfies_pyproject_and_has_token_auth() -> None:
    pins = {
        word.split("==", 1)[1]
        for _, words in _pip_installs()
        for word in words
        if re.match(r"ray(\[[\w,]+\])?==", word)
    }
    for pin in pins:
        assert _requirement("ray").specifier.contains(pin), f"ray {pin} vs pyproject.toml"
        assert Version(pin) >= Version("2.52"), "token authentication needs Ray >= 2.52"


def test_dockerfile_runs_as_non_root() -> None:
    steps = _instructions()
    assert steps[0][0] in ("FROM", "ARG") and any(k == "FROM" for k, _ in steps)
    users = [rest.split(":")[0] for k, rest in steps if k == "USER"]
    assert users and users[-1] not in ("root", "0"), f"last USER is {users[-1:] or 'unset'}"
    assert any(k == "WORKDIR" for k, _ in steps) and any(k == "CMD" for k, _ in steps)


# ----------------------------------------------------------------------------- secrets
SECRET_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b[0-9a-fA-F]{32,}\b"),  # e.g. a pasted `secrets.token_hex(32)`
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    # KEY=literal or KEY: literal (a `$` value comes from the environment)
    re.compile(
        r"(RAY_AUTH_TOKEN|ANTHROPIC_API_KEY|ANTHROPIC_AUTH_TOKEN)[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z0-9_\-]{6,}"
    ),
]


def test_no_secrets_under_docker() -> None:
    files = [p for p in DOCKER.rglob("*") if p.is_file()]
    assert {"Dockerfile", "docker-compose.yml", "README.md"} <= {p.name for p in files}
    assert not [p for p in files if p.name == ".env" or p.suffix == ".env"], "no .env in docker/"
    for path in files:
        text = path.read_text(errors="replace")
        for pattern in SECRET_PATTERNS:
            hit = pattern.search(text)
            assert not hit, f"{path.relative_to(ROOT)}: looks like a secret: {hit[0][:24]}…"
