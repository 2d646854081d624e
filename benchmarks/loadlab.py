"""Processes for the bridge load benchmark: Kamailio, one SIPp answerer, the linkcall service.

Every process is started through the lab package (``lab.process.ManagedProcess`` underneath)
and stopped by its PID in ``LoadLab.close()``; nothing is looked up by name. Loopback only,
free ports from ``lab.ports``, never 5060.

The service runs as its own process (``python -m api serve``), configured only through
``LINKCALL_*`` environment variables, so its CPU time and RSS can be read from /proc by PID.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from lab import ports
from lab.audio import make_ulaw_raw
from lab.kamailio import Kamailio
from lab.process import ManagedProcess, ProcessError
from lab.session import default_users
from lab.sipp import Sipp

HOST = "127.0.0.1"
SERVICE_USER = "1000"
# caller 3xxx, dispatcher 4xxx, unit 5xxx: all routed by Kamailio to the SIPp answerer
TRUNK_REGEX = "^[345][0-9]{3}$"
TONE_HZ = 1000.0
SERVICE_RTP = (61000, 65535)  # above the ephemeral range (32768-60999), below no lab pool


class LoadLab:
    """Kamailio + a streaming SIPp answerer, and a service restarted per measurement."""

    def __init__(
        self,
        workdir: Path,
        answer_delay_ms: int,
        rtp_ports: int = 2000,
        postgres_url: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.postgres = PgSchema(postgres_url) if postgres_url else None
        self.answer_delay_ms = answer_delay_ms
        self.users = default_users()
        self.sipp_port = ports.sip_port()
        self.sipp_media = ports.rtp_range(4)
        self.kamailio = Kamailio(
            workdir / "kamailio",
            self.users,
            trunk_regex=TRUNK_REGEX,
            trunk_target=(HOST, self.sipp_port),
            log_level=1,
        )
        self.sipp: Sipp | None = None
        self.service: ManagedProcess | None = None
        self.service_env: dict[str, str] = {}
        self.http_port = 0
        self.rtp = service_rtp_range(rtp_ports)
        self._runs = 0

    # ---- peers ----
    def start_peers(self) -> None:
        """Kamailio, then the SIPp answerer (answer delay, streams a µ-law tone, no end)."""
        self.kamailio.start()
        ulaw = make_ulaw_raw(self.workdir / "tone.ulaw", TONE_HZ, seconds=10.0, amplitude=0.3)
        self.sipp = Sipp.answerer(
            self.workdir / "sipp",
            media="stream",
            ulaw=ulaw,
            answer_delay_ms=self.answer_delay_ms,
            calls=None,
            port=self.sipp_port,
            media_port=self.sipp_media.lo,
            timeout_s=None,
        )
        self.sipp.start()

    # ---- the service ----
    def _env(self, data_dir: Path, sip_port: int) -> dict[str, str]:
        return {
            "LINKCALL_DATA_DIR": str(data_dir),
            "LINKCALL_SIP_LISTEN": f"{HOST}:{sip_port}",
            "LINKCALL_SIP_REGISTRAR": f"{HOST}:{self.kamailio.udp_port}",
            "LINKCALL_SIP_TRUNK_PEER": "",
            "LINKCALL_DIAL_RATE": "off",  # the benchmark places 100 bridges from one token
            "LINKCALL_SIP_USER": SERVICE_USER,
            "LINKCALL_SIP_PASSWORD": self.users[SERVICE_USER],
            "LINKCALL_RTP_PORTS": f"{self.rtp.lo}-{self.rtp.hi}",
            "LINKCALL_RING_TIMEOUT_DISPATCHER_S": "30",
            "LINKCALL_RING_TIMEOUT_CALLER_S": "30",
            "LINKCALL_RING_TIMEOUT_UNIT_S": "30",
            "LINKCALL_UNIT_CONFIRM": "false",  # the load's units are SIPp answerers: no key
            "LINKCALL_LOG_LEVEL": "WARNING",
        } | ({"LINKCALL_DATABASE_URL": self.postgres.create()} if self.postgres else {})

    def create_token(self, role: str) -> str:
        """``python -m api tokens create --role ROLE`` with the service's environment."""
        res = subprocess.run(
            [sys.executable, "-m", "api", "tokens", "create", "--role", role],
            env={**os.environ, **self.service_env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise ProcessError(f"tokens create failed ({res.returncode}): {res.stderr[-2000:]}")
        return res.stdout.strip().splitlines()[-1]

    def start_service(self) -> dict[str, str]:
        """A fresh service (new data dir); wait until it is ready and registered.

        Returns a bearer token per role (dispatcher, supervisor).
        """
        self._runs += 1
        run_dir = self.workdir / f"service-{self._runs}"
        sip_port = ports.sip_port()
        self.service_env = self._env(run_dir / "data", sip_port)
        tokens = {role: self.create_token(role) for role in ("dispatcher", "supervisor")}
        self.http_port = free_tcp_port()
        self.service = ManagedProcess(
            "linkcall",
            [sys.executable, "-m", "api", "serve", "--port", str(self.http_port)],
            run_dir / "service.log",
            cwd=run_dir,
            env=self.service_env,
        )
        self.service.start()
        self.kamailio.unregister(SERVICE_USER)
        self.service.wait_ready(self._ready, 60.0, "readiness and registration")
        return tokens

    def _ready(self) -> bool:
        try:
            resp = httpx.get(f"{self.base_url}/readyz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200 and self.kamailio.registered(SERVICE_USER)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def service_log(self) -> Path | None:
        return self.service.log_path if self.service is not None else None

    @property
    def service_pid(self) -> int:
        if self.service is None or self.service.pid is None:
            raise ProcessError("service not started")
        return self.service.pid

    def stop_service(self) -> None:
        try:
            if self.service is not None:
                self.service.stop(20.0)
                self.service = None
        finally:
            if self.postgres is not None:
                self.postgres.drop()

    def close(self) -> None:
        """Stop everything this lab started, by PID, in reverse order."""
        try:
            self.stop_service()
        finally:
            try:
                if self.sipp is not None:
                    self.sipp.stop()
            finally:
                self.kamailio.stop()


class PgSchema:
    """A fresh schema on a PostgreSQL server for one service run, dropped afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema: str | None = None

    def create(self) -> str:
        """Create the schema; return the service's database URL (search_path set to it)."""
        self.drop()
        self.schema = f"bench_{secrets.token_hex(6)}"
        self._admin(f'CREATE SCHEMA "{self.schema}"')
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.schema is not None:
            self._admin(f'DROP SCHEMA "{self.schema}" CASCADE')
            self.schema = None

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()


def service_rtp_range(size: int) -> ports.RtpRange:
    """``size`` UDP ports above the kernel's ephemeral range, every one free right now.

    Not from ``lab.ports``: its pool (10000-19998) is shared with the lab peers of tests
    running in parallel, which would then show up in (or collide with) the service's range.
    """
    for lo in range(SERVICE_RTP[0], SERVICE_RTP[1] - size + 2, size):
        if all(_udp_free(p) for p in range(lo, lo + size)):
            return ports.RtpRange(lo, lo + size - 1)
    raise RuntimeError(f"no {size} free UDP ports in {SERVICE_RTP}")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
    return port
