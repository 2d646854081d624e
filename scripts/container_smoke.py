"""Container smoke test: build the images and run the service from docker/compose.yaml.

Run it through ``scripts/container-smoke`` (installs docker.io, debootstrap and docker-compose
when missing; root only). It takes a few minutes and the whole machine's attention, so outside
CI hold the shared lock: ``flock /tmp/linkcall-heavy.lock scripts/container-smoke``.

1. Starts a private dockerd (``--bridge=none --iptables=false``; data root
   /var/lib/linkcall-docker, kept between runs as the layer cache) unless DOCKER_HOST is set.
2. ``scripts/build-image --offline-base``: the base image by debootstrap (tarball cached in
   /var/cache/linkcall-images), then linkcall and linkcall-kamailio.
3. A fresh PostgreSQL database on 127.0.0.1:5432; the SIP lab (Kamailio and three baresip
   phones on loopback).
4. ``docker-compose up --no-deps linkcall`` with docker/compose.yaml, pointed at that database
   and the lab's Kamailio, on free ports, host networking.
5. Checks what an operator would: the schema is at the code's head revision, /readyz answers
   200, the service is registered at Kamailio, a bridge of the three lab phones connects, its
   recording is finalised onto the recordings volume, Docker reports the container healthy;
   the compose ``kamailio`` service (the edge image) answers OPTIONS and accepts a REGISTER
   with the right password only.

Everything it started is stopped at the end, also on failure: containers by id (compose down
with their volumes), lab processes and dockerd by PID, the database dropped.
Exit status 0 when every check passed; the failing check is printed otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # lab/ and storage/ from this checkout (lab/ is not in the wheel)

import httpx  # noqa: E402
import psycopg  # noqa: E402

from lab import ports  # noqa: E402
from lab.session import LabSession  # noqa: E402
from lab.sipprobe import SipProbe, sip_options  # noqa: E402

DOCKER_ROOT = Path("/var/lib/linkcall-docker")
PG_ADMIN_URL = os.environ.get(
    "LINKCALL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PHONES = (("2001", 400.0), ("2002", 1000.0), ("2003", 1800.0))
SERVICE_USER = "1000"
T = TypeVar("T")


class SmokeFailure(AssertionError):
    """A check failed; the message says which and what was seen."""


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (OSError, httpx.HTTPError, subprocess.SubprocessError, ValueError) as exc:
            last = exc
        time.sleep(every)
    raise SmokeFailure(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")


def run(cmd: list[str], env: dict[str, str], timeout: float, **kw: Any) -> str:
    """Run a command; its stdout, or SmokeFailure with the tail of its output."""
    res = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if res.returncode != 0:
        raise SmokeFailure(
            f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-1500:]}{res.stderr[-2500:]}"
        )
    return res.stdout


def stop_pid(proc: subprocess.Popen[bytes], name: str, grace: float) -> None:
    """SIGTERM the process (group), SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    say(f"stopping {name} (pid {proc.pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def private_dockerd(logdir: Path) -> Iterator[dict[str, str]]:
    """Our own dockerd (stopped by PID at the end), or the engine DOCKER_HOST names."""
    env = dict(os.environ)
    if env.get("DOCKER_HOST"):
        say(f"using the engine at DOCKER_HOST={env['DOCKER_HOST']}")
        yield env
        return
    sock = DOCKER_ROOT / "docker.sock"
    env["DOCKER_HOST"] = f"unix://{sock}"
    if subprocess.run(["docker", "info"], env=env, capture_output=True, timeout=20).returncode == 0:
        pidfile = DOCKER_ROOT / "dockerd.pid"
        pid = pidfile.read_text().strip() if pidfile.exists() else "?"
        raise SmokeFailure(
            f"a dockerd (pid {pid}) already serves {sock}: another run? Stop it (kill {pid}) "
            "or set DOCKER_HOST to use it"
        )
    for sub in ("data", "exec"):
        (DOCKER_ROOT / sub).mkdir(parents=True, exist_ok=True)
    log = open(logdir / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    cmd = [
        "dockerd",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        f"--data-root={DOCKER_ROOT / 'data'}",
        f"--exec-root={DOCKER_ROOT / 'exec'}",
        f"--pidfile={DOCKER_ROOT / 'dockerd.pid'}",
        f"--host=unix://{sock}",
        "--containerd-namespace=linkcall",
        "--containerd-plugins-namespace=linkcall-plugins",
    ]
    if shutil.which("setpriv"):  # dies with this process even if it is SIGKILLed
        cmd = ["setpriv", "--pdeathsig", "TERM", *cmd]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    say(f"dockerd started (pid {proc.pid}), log {logdir / 'dockerd.log'}")
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise SmokeFailure(f"dockerd exited with {proc.returncode}; see its log")
            return (
                subprocess.run(
                    ["docker", "info"], env=env, capture_output=True, timeout=10
                ).returncode
                == 0
            )

        wait_for("dockerd answers", answers, 60)
        remove_leftovers(env)
        yield env
    finally:
        stop_pid(proc, "dockerd", 45)
        log.close()


def remove_leftovers(env: dict[str, str]) -> None:
    """Containers and volumes of an earlier run that was killed (our private engine only)."""
    label = "label=com.docker.compose.project"
    old = [
        line.split()[0]
        for line in docker(env, "ps", "-a", "--format", "{{.ID}} {{.Labels}}").splitlines()
        if "com.docker.compose.project=lcsmoke" in line
    ]
    if old:
        say(f"removing {len(old)} container(s) left by an earlier run")
        docker(env, "rm", "-f", "-v", *old)
    vols = [
        v
        for v in docker(env, "volume", "ls", "-q", "--filter", label).split()
        if v.startswith("lcsmoke")
    ]
    if vols:
        docker(env, "volume", "rm", *vols)
    docker(env, "image", "prune", "-f")  # images the last builds replaced


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on the shared PostgreSQL server, dropped at the end."""
    name = f"linkcall_smoke_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    say(f"database {name} created")
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say(f"database {name} dropped")


class Compose:
    """docker-compose (v1, Debian) or `docker compose` (v2) on docker/compose.yaml."""

    def __init__(self, env: dict[str, str], project: str) -> None:
        if shutil.which("docker-compose"):
            self.base = ["docker-compose"]
        else:
            self.base = ["docker", "compose"]
        # compose refuses to run without the passwords it interpolates (`:?`), whatever the command
        self.env = {"LINKCALL_PG_PASSWORD": "unset", "LINKCALL_SIP_PASSWORD": "unset", **env}
        self.project = project

    def __call__(
        self, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None
    ) -> str:
        cmd = [*self.base, "-p", self.project, "-f", str(ROOT / "docker" / "compose.yaml"), *args]
        return run(cmd, {**self.env, **(extra_env or {})}, timeout)

    def container_id(self, service: str) -> str:
        cid = self("ps", "-q", service).strip()
        if not cid:
            raise SmokeFailure(f"compose service {service} has no container")
        return cid


def docker(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    return run(["docker", *args], env, timeout)


def check_kamailio_image(compose: Compose, env: dict[str, str]) -> None:
    """The compose service kamailio: OPTIONS; the service's and a phone's accounts only."""
    port = ports.sip_port()
    extra = {
        "KAMAILIO_SIP_PORT": str(port),
        "LINKCALL_SIP_PASSWORD": "svc-secret",  # the service's account, as compose wires it
        "KAMAILIO_PHONE_USERS": "2001:pw-2001",
    }
    compose("up", "-d", "--no-deps", "--no-build", "kamailio", extra_env=extra)
    try:
        status = wait_for(
            f"the Kamailio container answers OPTIONS on 127.0.0.1:{port}",
            lambda: sip_options("127.0.0.1", port, timeout=0.5),
            30,
        )
        if not status.startswith("SIP/2.0 200"):
            raise SmokeFailure(f"OPTIONS to the Kamailio container: {status}")

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

        results = {
            "service 1000": register(SERVICE_USER, "svc-secret"),
            "phone 2001": register("2001", "pw-2001"),
            "2001, wrong password": register("2001", "wrong"),
        }
        if list(results.values()) != [200, 200, 401]:
            raise SmokeFailure(f"Kamailio container REGISTER results: {results}")
        say(f"kamailio image: OPTIONS {status}; REGISTER {results}")
    finally:
        compose("rm", "-s", "-f", "-v", "kamailio", extra_env=extra)


def check_service(compose: Compose, env: dict[str, str], db: str, workdir: Path) -> None:
    from storage.migrate import head_revision

    http_port = ports.sip_port()  # a free TCP port from the lab's reserved blocks
    sip_port = ports.sip_port()
    rtp = ports.rtp_range(100)
    with LabSession(workdir / "lab", phones=PHONES) as lab:
        kam = lab.kamailio
        say(f"lab: Kamailio udp:127.0.0.1:{kam.udp_port}, phones {', '.join(u for u, _ in PHONES)}")
        lab.phones["2003"].press_on_answer("1")  # the unit confirms (LINKCALL_UNIT_CONFIRM)
        extra = {
            "LINKCALL_PG_USER": "postgres",
            "LINKCALL_PG_PASSWORD": "unused-trust-auth",
            "LINKCALL_PG_PORT": "5432",
            "LINKCALL_PG_DB": db,
            "LINKCALL_SIP_USER": SERVICE_USER,
            "LINKCALL_SIP_PASSWORD": lab.users[SERVICE_USER],
            "KAMAILIO_LISTEN_IP": "127.0.0.1",
            "KAMAILIO_SIP_PORT": str(kam.udp_port),
            "LINKCALL_HTTP_HOST": "127.0.0.1",
            "LINKCALL_HTTP_PORT": str(http_port),
            "LINKCALL_SIP_LISTEN": f"127.0.0.1:{sip_port}",
            "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
            "LINKCALL_NODE_NAME": "smoke",
        }
        started = time.monotonic()
        try:
            compose("up", "-d", "--no-deps", "--no-build", "linkcall", extra_env=extra)
            cid = compose.container_id("linkcall")
            _check_running_service(
                compose, env, cid, db, http_port, kam, head_revision(), started, extra, workdir
            )
        except BaseException:
            with contextlib.suppress(Exception):
                print(
                    compose("logs", "--no-color", "--tail", "60", "linkcall", extra_env=extra),
                    file=sys.stderr,
                )
            raise
        finally:
            with contextlib.suppress(Exception):
                (workdir / "linkcall-container.log").write_text(
                    compose("logs", "--no-color", "linkcall", extra_env=extra)
                )
            compose("down", "-v", "--timeout", "20", extra_env=extra, timeout=120)


def _check_running_service(
    compose: Compose,
    env: dict[str, str],
    cid: str,
    db: str,
    http_port: int,
    kam: Any,
    head: str | None,
    started: float,
    extra: dict[str, str],
    workdir: Path,
) -> None:
    base = f"http://127.0.0.1:{http_port}"
    http = httpx.Client(base_url=base, timeout=10)

    def readyz() -> dict[str, Any] | None:
        state = docker(env, "inspect", "--format", "{{.State.Status}}", cid).strip()
        if state not in ("running", "created"):
            raise SmokeFailure(f"the linkcall container is {state}")
        resp = http.get("/readyz")
        return resp.json() if resp.status_code == 200 else None

    ready = wait_for("/readyz answers 200", readyz, 90)
    say(f"/readyz 200 after {time.monotonic() - started:.1f} s: {json.dumps(ready['checks'])}")

    # migrations ran on start: the fresh database is at the code's head revision
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    current = (
        compose("exec", "-T", "linkcall", "linkcall", "db", "current").strip().splitlines()[-1]
    )
    if row is None or row[0] != head or current != head:
        raise SmokeFailure(f"schema: database {row}, `db current` {current!r}, code head {head!r}")
    say(f"migrations: database at head {head}")

    # the IVR prompts were generated at start (espeak-ng and sox are in the image)
    prompts = compose(
        "exec", "-T", "linkcall", "sh", "-c", "stat -c '%s %n' /var/lib/linkcall/prompts/*.wav"
    ).splitlines()
    if not prompts or any(int(line.split()[0]) <= 44 for line in prompts):
        raise SmokeFailure(f"IVR prompts on the data volume: {prompts}")
    say(f"prompts: {len(prompts)} generated on the data volume")

    wait_for(f"{SERVICE_USER} registered at Kamailio", lambda: kam.registered(SERVICE_USER), 20)
    say(f"registered: Kamailio has a binding for {SERVICE_USER}: {kam.contacts(SERVICE_USER)}")

    token = (
        compose(
            "exec",
            "-T",
            "linkcall",
            "linkcall",
            "tokens",
            "create",
            "--role",
            "dispatcher",
            "--name",
            "smoke",
        )
        .strip()
        .splitlines()[-1]
    )
    auth = {"Authorization": f"Bearer {token}"}
    resp = http.post(
        "/api/v1/bridges",
        headers=auth,
        json={
            "caller": {"number": "2001"},
            "dispatcher": {"number": "2002"},
            "unit": {"number": "2003"},
        },
    )
    if resp.status_code != 202:
        raise SmokeFailure(f"POST /api/v1/bridges: {resp.status_code} {resp.text}")
    bid = resp.json()["id"]
    t0 = time.monotonic()

    def connected() -> dict[str, Any] | None:
        body: dict[str, Any] = http.get(f"/api/v1/bridges/{bid}", headers=auth).json()
        if body["state"] in ("failed", "ended"):
            raise SmokeFailure(f"bridge {body['state']}: {body}")
        legs_ok = all(x["state"] == "connected" for x in body["legs"])
        return body if body["state"] == "connected" and legs_ok else None

    body = wait_for("the bridge's three legs connected", connected, 45)
    say(
        f"bridge {bid} connected in {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"{x['role']}={x['state']}" for x in body["legs"])
    )
    time.sleep(2.0)
    resp = http.post(f"/api/v1/bridges/{bid}/end", headers=auth)
    if resp.status_code != 200:
        raise SmokeFailure(f"ending the bridge: {resp.status_code} {resp.text}")

    def ended() -> dict[str, Any] | None:
        b: dict[str, Any] = http.get(f"/api/v1/bridges/{bid}", headers=auth).json()
        return b if b["state"] == "ended" and b["recording_id"] else None

    rec_id = wait_for("the bridge ended with a recording", ended, 20)["recording_id"]

    def finalised() -> dict[str, Any] | None:
        r = http.get(f"/api/v1/recordings/{rec_id}", headers=auth)
        rec: dict[str, Any] = r.json()
        return rec if r.status_code == 200 and rec["state"] == "finalised" else None

    rec = wait_for("the recording finalised", finalised, 30)
    mixed = rec["tracks"]["mixed"]["file"]
    listing = compose(
        "exec",
        "-T",
        "linkcall",
        "sh",
        "-c",
        f"stat -c '%s %U' /var/lib/linkcall/recordings/{mixed}; "
        "awk '$2 == \"/var/lib/linkcall/recordings\" {print $2}' /proc/mounts",
    ).split()
    if len(listing) < 3 or int(listing[0]) <= 44 or listing[1] != "linkcall":
        raise SmokeFailure(f"recording file on the volume: {listing}")
    say(
        f"recording {rec_id} finalised, {rec['duration_s']:.1f} s; mixed track {listing[0]} bytes "
        "on the recordings volume (its own mount), owned by linkcall"
    )

    # `linkcall backup` as docs/operations.md says: in the running container (pg_dump is in the
    # image) into the data volume, then copied out with `docker cp`
    out = compose(
        "exec", "-T", "linkcall", "linkcall", "backup", "/var/lib/linkcall/backups/b1", timeout=180
    )
    docker(env, "cp", f"{cid}:/var/lib/linkcall/backups/b1", str(workdir / "b1"))
    sums = workdir / "b1" / "SHA256SUMS"
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=sums.parent, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    listed = sums.read_text() if sums.exists() else ""
    if check.returncode != 0 or mixed not in listed or "database.pgdump" not in listed:
        raise SmokeFailure(f"backup: {out} {check.stdout} {check.stderr} SHA256SUMS: {listed}")
    say(f"backup: {out.strip().splitlines()[-1][:100]}…; sha256sum -c passes on the host")

    def healthy() -> str | None:
        h = docker(env, "inspect", "--format", "{{.State.Health.Status}}", cid).strip()
        if h == "unhealthy":
            raise SmokeFailure("Docker reports the container unhealthy")
        return h if h == "healthy" else None

    wait_for("Docker HEALTHCHECK healthy", healthy, 75, every=2)
    say("docker: container healthy (HEALTHCHECK on /healthz)")
    user = docker(env, "exec", cid, "id", "-un").strip()
    if user != "linkcall":
        raise SmokeFailure(f"the service runs as {user}, not linkcall")
    http.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep logs and lab files in this directory")
    parser.add_argument("--no-build", action="store_true", help="use the images already built")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the container smoke test needs root (dockerd, debootstrap)", file=sys.stderr)
        return 3
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="linkcall-smoke-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    try:
        with private_dockerd(workdir) as env:
            if not args.no_build:
                t = time.monotonic()
                subprocess.run(
                    [str(ROOT / "scripts" / "build-image"), "--offline-base"],
                    env=env,
                    check=True,
                    timeout=1200,
                )
                say(f"images built in {time.monotonic() - t:.0f} s")
            t = time.monotonic()
            compose = Compose(env, f"lcsmoke{uuid.uuid4().hex[:8]}")
            check_kamailio_image(compose, env)
            with fresh_database() as db:
                check_service(compose, env, db, workdir)
            say(f"smoke checks passed in {time.monotonic() - t:.0f} s")
    except (SmokeFailure, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        say(f"CONTAINER SMOKE FAILED: {exc}")
        say(f"logs in {workdir}")
        return 1
    finally:
        say(f"total {time.monotonic() - t_start:.0f} s")
    if args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
