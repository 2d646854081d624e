"""The deployment files without Docker: compose.yaml parsed, the image's entrypoint and health
check, the Kamailio edge's entrypoint and the systemd unit run on this machine.

The images themselves are built and run by scripts/container-smoke (CI runs it after the suite).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.settings import Settings
from lab import ports
from lab.sipprobe import SipProbe, sip_options
from storage.migrate import head_revision

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
VENV_BIN = Path(sys.executable).parent
IMAGE_ONLY_VARS = {"LINKCALL_HTTP_HOST", "LINKCALL_HTTP_PORT"}  # read by the entrypoint
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (what compose.yaml uses)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _VAR.sub(one, value)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    raw = compose()["services"][name]["environment"]
    return {k: interpolate(str(v), env) for k, v in raw.items()}


def test_compose_runs_every_service_on_the_host_network_with_data_on_named_volumes() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {"linkcall", "postgres", "kamailio"}
    for name, svc in services.items():
        assert svc["network_mode"] == "host", name
        assert "ports" not in svc and "networks" not in svc, name
        assert svc["restart"] == "unless-stopped", name
    declared = set(doc["volumes"])
    mounts = {
        name: dict(v.split(":", 1) for v in svc.get("volumes", []))
        for name, svc in services.items()
    }
    assert mounts["linkcall"] == {
        "linkcall-data": "/var/lib/linkcall",
        "linkcall-recordings": "/var/lib/linkcall/recordings",
    }
    assert mounts["postgres"] == {"postgres-data": "/var/lib/postgresql/data"}
    assert declared == {v for m in mounts.values() for v in m}
    # the service waits for a healthy database; the images build from this repository
    assert services["linkcall"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, dockerfile in (
        ("linkcall", "docker/Dockerfile"),
        ("kamailio", "docker/kamailio/Dockerfile"),
    ):
        build = services[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == ROOT / dockerfile
        assert build["network"] == "host"


def test_compose_environment_gives_valid_settings_wired_to_its_own_kamailio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = {
        "LINKCALL_PG_PASSWORD": "pgsecret",
        "LINKCALL_SIP_PASSWORD": "sipsecret",
        "KAMAILIO_LISTEN_IP": "10.20.30.40",
        "KAMAILIO_SIP_PORT": "5080",
        "KAMAILIO_PHONE_USERS": "2001:a 2002:b",
        "LINKCALL_SIP_LISTEN": "10.20.30.40:5070",
    }
    lc = service_env("linkcall", operator)
    kam = service_env("kamailio", operator)
    # every LINKCALL_ variable the service gets is a setting it knows (or the entrypoint's)
    known = {f"LINKCALL_{name.upper()}" for name in Settings.model_fields} | IMAGE_ONLY_VARS
    assert set(lc) - known == set()
    # the service registers to the Kamailio of this compose file, with the account Kamailio has
    assert lc["LINKCALL_SIP_REGISTRAR"] == "10.20.30.40:5080"
    assert (kam["KAMAILIO_LISTEN_IP"], kam["KAMAILIO_SIP_PORT"]) == ("10.20.30.40", "5080")
    assert kam["KAMAILIO_USERS"].split() == ["1000:sipsecret", "2001:a", "2002:b"]
    assert lc["LINKCALL_DATABASE_URL"] == "postgresql://linkcall:pgsecret@127.0.0.1:5432/linkcall"
    for name in list(os.environ):
        if name.startswith("LINKCALL_"):
            monkeypatch.delenv(name)
    for name, value in lc.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.sip_registrar == "10.20.30.40:5080"
    assert settings.sip_password == "sipsecret"
    # an operator who forgot a password gets told which, before anything starts
    with pytest.raises(ValueError, match="LINKCALL_SIP_PASSWORD"):
        service_env("linkcall", {"LINKCALL_PG_PASSWORD": "x"})


def test_the_dockerfile_builds_on_the_base_the_offline_script_imports() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base is not None and "FROM ${BASE_IMAGE}" in text
    script = (ROOT / "scripts" / "build-base-image").read_text()
    assert f"NAME={base.group(1)}" in script
    kam = (DOCKER / "kamailio" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={base.group(1)}" in kam
    assert re.search(r"^USER linkcall$", text, re.M)
    assert 'VOLUME ["/var/lib/linkcall", "/var/lib/linkcall/recordings"]' in text
    assert 'CMD ["linkcall-healthcheck"]' in text


@contextmanager
def started(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group, stopped by PID (TERM, then KILL) however the test ends."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()[-2000:]}"
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered:\n{log.read_text()[-2000:]}")


def service_env_for_host(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKCALL_")}
    rtp = ports.rtp_range(20)
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        LINKCALL_DATA_DIR=str(tmp_path / "data"),
        LINKCALL_HTTP_HOST="127.0.0.1",
        LINKCALL_HTTP_PORT=str(port),
        LINKCALL_SIP_LISTEN=f"127.0.0.1:{ports.sip_port()}",
        LINKCALL_RTP_PORTS=f"{rtp.lo}-{rtp.hi}",
    )
    return env


def test_image_entrypoint_migrates_then_serves_and_the_healthcheck_follows_it(
    tmp_path: Path,
) -> None:
    port = ports.sip_port()
    env = service_env_for_host(tmp_path, port)
    entry = str(DOCKER / "linkcall-entrypoint")
    health = [sys.executable, str(DOCKER / "linkcall-healthcheck")]
    log = tmp_path / "serve.log"
    with started([entry], env, log) as proc:
        assert wait_http(f"http://127.0.0.1:{port}/healthz", proc, log).status_code == 200
        db = sqlite3.connect(tmp_path / "data" / "linkcall.sqlite3")
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        db.close()
        assert "database at" in log.read_text()  # `linkcall db upgrade` ran before serve
        assert subprocess.run(health, env=env, timeout=10).returncode == 0
        # other commands go to linkcall itself
        out = subprocess.run(
            [entry, "db", "current"], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == head_revision()
    down = subprocess.run(health, env=env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1 and "/healthz" in down.stderr


def test_systemd_unit_is_valid_and_its_commands_start_the_service(tmp_path: Path) -> None:
    unit = (DOCKER / "linkcall.service").read_text()
    assert shutil.which("systemd-analyze"), "systemd-analyze (package systemd) is needed"
    local = tmp_path / "linkcall.service"
    local.write_text(unit.replace("/opt/linkcall/bin/", f"{VENV_BIN}/"))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and "linkcall.service" not in verify.stderr, verify.stderr
    # run what systemd would: Environment=, then the EnvironmentFile, ExecStartPre, ExecStart
    port = ports.sip_port()
    env = service_env_for_host(tmp_path, port)
    for line in unit.splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
    env.update(
        LINKCALL_DATA_DIR=str(tmp_path / "state"),
        LINKCALL_HTTP_PORT=str(port),
    )
    keys = dict(line.split("=", 1) for line in unit.splitlines() if line.startswith("Exec"))

    def command(key: str) -> list[str]:
        words = keys[key].replace("/opt/linkcall/bin/", f"{VENV_BIN}/").split()
        return [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], w) for w in words]

    pre = subprocess.run(
        command("ExecStartPre"), env=env, capture_output=True, text=True, timeout=60
    )
    assert pre.returncode == 0, pre.stderr
    log = tmp_path / "unit.log"
    with started(command("ExecStart"), env, log) as proc:
        assert wait_http(f"http://127.0.0.1:{port}/readyz", proc, log).json()["checks"]["database"][
            "ok"
        ]


@pytest.fixture
def kamailio_entry(tmp_path: Path) -> Iterator[tuple[int, Any]]:
    """Runs docker/kamailio/entrypoint on this machine (paths pointed at tmp_path)."""
    assert shutil.which("kamailio"), "kamailio is needed (scripts/bootstrap.sh installs it)"
    port = ports.sip_port()
    env = {
        **os.environ,
        "KAMAILIO_RUN_DIR": str(tmp_path),
        "KAMAILIO_CFG": str(DOCKER / "kamailio" / "kamailio.cfg"),
        "KAMAILIO_SIP_PORT": str(port),
        "KAMAILIO_LISTEN_IP": "127.0.0.1",
    }

    def run(users: str, **extra: str) -> subprocess.CompletedProcess[str] | None:
        env["KAMAILIO_USERS"] = users
        env.update(extra)
        proc = subprocess.Popen(
            [str(DOCKER / "kamailio" / "entrypoint")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
            if (sip_options("127.0.0.1", port, timeout=0.3) or "").startswith("SIP/2.0 200"):
                return None
            time.sleep(0.2)
        raise AssertionError("the Kamailio entrypoint neither started nor failed")

    procs: list[subprocess.Popen[str]] = []
    try:
        yield port, run
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def test_kamailio_entrypoint_serves_the_accounts_given_in_the_environment(
    kamailio_entry: tuple[int, Any],
) -> None:
    port, run = kamailio_entry
    assert run("1000:s3cret 2001:pw-2001") is None  # running, answers OPTIONS

    def register(user: str, password: str) -> int:
        with SipProbe("127.0.0.1", port) as probe:
            return probe.request(
                "REGISTER",
                f"sip:127.0.0.1:{port}",
                from_user=user,
                to_uri=f"sip:{user}@127.0.0.1:{port}",
                auth=(user, password),
                extra_headers=["Expires: 60"],
            ).status

    assert register("1000", "s3cret") == 200
    assert register("2001", "pw-2001") == 200
    assert register("2001", "wrong") == 401
    assert register("2009", "pw2009") == 401  # not an account here


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ('1000:pa"ss', "the password of 1000"),
        ("1000", "has no password"),
        ("bad user:x", "has no password"),
        ("10;00:x", "bad SIP user name"),
    ],
)
def test_kamailio_entrypoint_refuses_accounts_it_cannot_write_safely(
    kamailio_entry: tuple[int, Any], users: str, message: str
) -> None:
    _, run = kamailio_entry
    result = run(users)
    assert result is not None and result.returncode == 2
    assert message in result.stdout


def edge_env(**values: str) -> dict[str, str]:
    """The environment of the image's edge mode, with edge.cfg from this checkout."""
    return {
        "KAMAILIO_CONFIG": "edge",
        "KAMAILIO_CFG": str(DOCKER / "kamailio" / "edge.cfg"),
        "KAMAILIO_EDGE_NODES": "127.0.0.1:25071 127.0.0.1:25072",
        "KAMAILIO_EDGE_PBX": "sip:127.0.0.1:25090",
        **values,
    }


def test_kamailio_entrypoint_runs_the_edge_with_its_control_socket_where_the_healthcheck_looks(
    kamailio_entry: tuple[int, Any], tmp_path: Path
) -> None:
    _, run = kamailio_entry
    assert run("", **edge_env()) is None  # running, answers OPTIONS itself
    healthcheck = (DOCKER / "kamailio" / "Dockerfile").read_text()
    assert "unix:/run/kamailio-linkcall/kamailio.ctl" in healthcheck  # RUN_DIR's socket ...
    sock = f"unix:{tmp_path}/kamailio.ctl"  # ... which here is tmp_path's
    uptime = subprocess.run(["kamcmd", "-s", sock, "core.uptime"], capture_output=True,
                            text=True, timeout=5, check=False)  # fmt: skip
    assert uptime.returncode == 0 and "uptime" in uptime.stdout, uptime.stdout + uptime.stderr
    listed = subprocess.run(["kamcmd", "-s", sock, "dispatcher.list"], capture_output=True,
                            text=True, timeout=5, check=True).stdout  # fmt: skip
    assert "sip:127.0.0.1:25071" in listed and "sip:127.0.0.1:25072" in listed, listed


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"KAMAILIO_EDGE_PBX": ""}, "KAMAILIO_EDGE_PBX must be a SIP URI"),
        ({"KAMAILIO_EDGE_NODES": ""}, "no nodes"),
        ({"KAMAILIO_EDGE_NODES": "10.0.0.1:5060;x=1"}, "bad node address"),
        ({"KAMAILIO_EDGE_SERVICE": '^110"$'}, "KAMAILIO_EDGE_SERVICE may not hold"),
        ({"KAMAILIO_CONFIG": "proxy"}, "KAMAILIO_CONFIG must be registrar or edge"),
    ],
)
def test_kamailio_entrypoint_refuses_an_edge_it_cannot_configure(
    kamailio_entry: tuple[int, Any], values: dict[str, str], message: str
) -> None:
    _, run = kamailio_entry
    result = run("", **edge_env(**values))
    assert result is not None and result.returncode == 2
    assert message in result.stdout
