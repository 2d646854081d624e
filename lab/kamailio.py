"""A real Kamailio registrar/proxy for the lab, run from docker/kamailio/kamailio.cfg.

The config file is used as is; the lab writes two small files into the work directory
(Kamailio runs with that directory as its cwd, and the config imports them from there):

* ``kamailio-local.cfg``: ``#!define`` lines (ports, domain, auth mode, trunk, control socket)
* ``kamailio-users.cfg``: ``route[LAB_USERS]`` filling the htable of passwords

``registered(user)`` asks Kamailio itself over its binrpc control socket
(``kamcmd -s unix:WORKDIR/kamailio.ctl ul.lookup location s:USER``), so it reflects the
registrar's real state (including expiry and de-registration) rather than log guesses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from lab import ports
from lab.process import ManagedProcess, ProcessError, wait_until
from lab.sipprobe import sip_options

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "docker" / "kamailio" / "kamailio.cfg"
HOST = "127.0.0.1"

InviteAuth = Literal["407", "401"]

_USER_RE = re.compile(r"^[A-Za-z0-9._+-]+$")


def _cfg_str(value: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"unsupported character in config string: {value!r}")
    return f'"{value}"'


class Kamailio:
    """A Kamailio process on 127.0.0.1 with its own workdir, users, ports and auth mode.

    ``invite_auth="407"`` (default): REGISTER is challenged with 401, INVITE (and other
    out-of-dialog requests) with 407, statefully. ``"401"``: everything with 401,
    statelessly (pyVoIP 1.6.8 compatibility).

    ``trunk_prefix`` (e.g. ``"3"``) or ``trunk_regex`` selects R-URI users sent to
    ``trunk_target`` (``(host, port)``). Requests *from* the trunk target's address are
    accepted without authentication, so the trunk peer can also call registered users.
    """

    def __init__(
        self,
        workdir: Path,
        users: Mapping[str, str],
        udp_port: int | None = None,
        tcp_port: int | None = None,
        invite_auth: InviteAuth = "407",
        trunk_prefix: str | None = None,
        trunk_target: tuple[str, int] | None = None,
        trunk_regex: str | None = None,
        domain: str = HOST,
        log_level: int = 2,
        register_auth: InviteAuth = "401",
        qop: bool = False,
        algorithm: str = "MD5",
    ) -> None:
        if invite_auth not in ("407", "401"):
            raise ValueError("invite_auth must be '407' or '401'")
        for user, pw in users.items():
            if not _USER_RE.match(user):
                raise ValueError(f"bad user name {user!r}")
            _cfg_str(pw)
        if (trunk_prefix or trunk_regex) and trunk_target is None:
            raise ValueError("trunk_prefix/trunk_regex needs trunk_target")
        self.workdir = Path(workdir)
        self.users = dict(users)
        self._leases = ports.Leases()
        base = udp_port if udp_port is not None else self._leases.sip_port()
        self.udp_port = base
        self.tcp_port = tcp_port if tcp_port is not None else base
        self.invite_auth: InviteAuth = invite_auth
        if register_auth == "407" and invite_auth == "401":
            raise ValueError("register_auth='407' needs the standards mode (invite_auth='407')")
        self.register_auth: InviteAuth = register_auth
        self.qop = qop
        if algorithm not in ("MD5", "SHA-256"):
            raise ValueError("algorithm must be 'MD5' or 'SHA-256'")
        self.algorithm = algorithm
        if trunk_regex is None and trunk_prefix is not None:
            trunk_regex = "^" + re.escape(trunk_prefix) + "[0-9]*$"
        self.trunk_regex = trunk_regex
        self.trunk_target = trunk_target
        self.domain = domain
        self.log_level = log_level
        self.ctl_socket = self.workdir / "kamailio.ctl"
        self.pid_file = self.workdir / "kamailio.pid"
        self.log_path = self.workdir / "kamailio.log"
        self.config = CONFIG
        self._proc: ManagedProcess | None = None

    # ---- config ----
    def defines(self) -> dict[str, str | None]:
        """The ``#!define`` lines written to kamailio-local.cfg (name -> value or None)."""
        d: dict[str, str | None] = {
            "LISTEN_IP": _cfg_str(HOST),
            "SIP_UDP_PORT": str(self.udp_port),
            "SIP_TCP_PORT": str(self.tcp_port),
            "WITH_TCP": None,
            "SIP_DOMAIN": _cfg_str(self.domain),
            "CTL_SOCKET": _cfg_str(f"unix:{self.ctl_socket}"),
            "LOG_LEVEL": str(self.log_level),
            "WITH_USERS": None,
        }
        if self.invite_auth == "401":
            d["INVITE_AUTH_401"] = None
        if self.register_auth == "407":
            d["REGISTER_AUTH_407"] = None
        if self.qop:
            d["CHALLENGE_FLAGS"] = _cfg_str("1")
        if self.algorithm != "MD5":
            d["AUTH_ALGORITHM"] = _cfg_str(self.algorithm)
        if self.trunk_regex is not None and self.trunk_target is not None:
            host, port = self.trunk_target
            d["WITH_TRUNK"] = None
            d["TRUNK_REGEX"] = _cfg_str(self.trunk_regex)
            d["TRUNK_DST"] = _cfg_str(f"sip:{host}:{port}")
            d["TRUNK_IP"] = _cfg_str(host)
            d["TRUNK_PORT"] = str(port)
        return d

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = ["# written by lab/kamailio.py"]
        for name, value in self.defines().items():
            lines.append(f"#!define {name}" + (f" {value}" if value is not None else ""))
        (self.workdir / "kamailio-local.cfg").write_text("\n".join(lines) + "\n")
        users = ["# written by lab/kamailio.py", "route[LAB_USERS] {"]
        for user, pw in self.users.items():
            users.append(f"    $sht(pw=>{user}) = {_cfg_str(pw)};")
        users.append("}")
        (self.workdir / "kamailio-users.cfg").write_text("\n".join(users) + "\n")

    def check_config(self) -> None:
        """``kamailio -c``: raise ProcessError with kamailio's output if the config is bad."""
        self.write_config()
        res = subprocess.run(
            ["kamailio", "-c", "-f", str(self.config)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if res.returncode != 0:
            raise ProcessError(f"kamailio -c failed ({res.returncode}):\n{res.stderr}")

    # ---- lifecycle ----
    def start(self, timeout: float = 15.0) -> None:
        if shutil.which("kamailio") is None:
            raise ProcessError("kamailio not installed (apt-get install kamailio)")
        self._leases.claim(self.udp_port)
        self.check_config()
        self.ctl_socket.unlink(missing_ok=True)
        self._proc = ManagedProcess(
            "kamailio",
            [
                "kamailio",
                "-DD",
                "-E",
                "-f",
                self.config,
                "-m",
                "64",
                "-M",
                "8",
                "-Y",
                self.workdir,
                "-P",
                self.pid_file,
            ],
            log_path=self.log_path,
            cwd=self.workdir,
        )
        self._proc.start()
        try:
            self._proc.wait_ready(self._answers_options, timeout, "an OPTIONS answer")
        except BaseException:
            self.stop()
            raise

    def _answers_options(self) -> bool:
        status = sip_options(HOST, self.udp_port, timeout=0.3)
        return status is not None and status.startswith("SIP/2.0 200")

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None:
            self._proc.stop(timeout)
        self._leases.release_all()

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ---- state ----
    def kamcmd(self, *args: str, timeout: float = 5.0) -> str:
        """Run a kamcmd (binrpc) command against this instance; return stdout."""
        res = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl_socket}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if res.returncode != 0:
            raise ProcessError(f"kamcmd {' '.join(args)}: {res.stdout}{res.stderr}".strip())
        return res.stdout

    def contacts(self, user: str) -> list[str]:
        """Registered contact URIs of ``user`` (empty if not registered)."""
        try:
            out = self.kamcmd("ul.lookup", "location", f"s:{user}")
        except ProcessError as e:
            if "not found" in str(e).lower():
                return []
            raise
        return re.findall(r"Address:\s*(\S+)", out)

    def unregister(self, user: str) -> None:
        """Drop every binding of ``user`` (e.g. stale ones left by a killed phone)."""
        try:
            self.kamcmd("ul.rm", "location", f"s:{user}")
        except ProcessError as e:
            if "not found" not in str(e).lower():
                raise

    def registered(self, user: str) -> bool:
        return bool(self.contacts(user))

    def wait_registered(self, user: str, timeout: float = 10.0) -> None:
        wait_until(lambda: self.registered(user), timeout, 0.1, f"{user} registered")

    def log_text(self) -> str:
        return self._proc.log_text() if self._proc is not None else ""

    @property
    def uri(self) -> str:
        return f"sip:{HOST}:{self.udp_port}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}:{self.udp_port}"

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<Kamailio udp={self.udp_port} tcp={self.tcp_port} auth={self.invite_auth} "
            f"pid={self.pid}>"
        )


def kamailio_available() -> bool:
    return shutil.which("kamailio") is not None and os.geteuid() == 0
