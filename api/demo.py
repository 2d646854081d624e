"""`linkcall demo`: a local demonstration on the embedded defaults.

Starts the SIP lab (Kamailio and three baresip softphones with 400/1000/1800 Hz tones), then
the linkcall service in its own process on free ports, registered to the lab's Kamailio, and
shows that it is healthy. Everything it started is stopped by PID at the end, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from api.settings import Settings

DEMO_PHONES = (("2001", 400.0), ("2002", 1000.0), ("2003", 1800.0))
SERVICE_USER = "1000"


def _say(msg: str) -> None:
    print(msg, flush=True)


def missing_tools() -> list[str]:
    """System programs the lab needs that are not installed."""
    return [t for t in ("kamailio", "baresip", "sipp", "sox") if shutil.which(t) is None]


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _wait_ready(base: str, proc: subprocess.Popen[bytes], deadline_s: float) -> dict[str, object]:
    deadline = time.monotonic() + deadline_s
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        try:
            status, last = _get_json(f"{base}/readyz")
            if status == 200:
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"service not ready after {deadline_s:.0f} s: {last}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_demo(settings: Settings, *, seconds: float = 0) -> int:
    """Run the demo; returns the process exit code."""
    missing = missing_tools()
    if missing:
        _say(
            f"缺少系统软件 / missing system packages: {', '.join(missing)}\n"
            "  sudo apt-get install -y kamailio baresip-core sip-tester sox espeak-ng"
        )
        return 3
    from lab.session import LabSession

    workdir = (settings.data_dir / "demo").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    _say(f"== linkcall 演示 / demo — working directory {workdir}")
    with LabSession(workdir / "lab", phones=DEMO_PHONES) as lab:
        kam = lab.kamailio
        _say(
            f"实验室 / lab: Kamailio on udp:127.0.0.1:{kam.udp_port}, phones "
            + ", ".join(f"{u} ({int(hz)} Hz)" for u, hz in DEMO_PHONES)
        )
        http_port = _free_tcp_port()
        env = {
            **os.environ,
            "LINKCALL_DATA_DIR": str(workdir / "service"),
            "LINKCALL_DATABASE_URL": settings.database_url,
            "LINKCALL_SIP_LISTEN": f"127.0.0.1:{_free_tcp_port()}",
            "LINKCALL_SIP_REGISTRAR": f"127.0.0.1:{kam.udp_port}",
            "LINKCALL_SIP_USER": SERVICE_USER,
            "LINKCALL_SIP_PASSWORD": lab.users[SERVICE_USER],
            "LINKCALL_DISPATCHER_SEATS": "2001",
        }
        log_path = workdir / "service.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api", "serve", "--port", str(http_port)],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                return _run_with_service(
                    lab, proc, f"http://127.0.0.1:{http_port}", seconds, log_path
                )
            finally:
                _stop(proc)


def _run_with_service(
    lab: object, proc: subprocess.Popen[bytes], base: str, seconds: float, log_path: Path
) -> int:
    from lab.session import LabSession

    assert isinstance(lab, LabSession)
    try:
        ready = _wait_ready(base, proc, 60)
    except (RuntimeError, TimeoutError) as exc:
        _say(f"服务未就绪 / service not ready: {exc}\n  log: {log_path}")
        return 1
    _say(f"服务 / service: {base}  (API docs {base}/docs)")
    for name, check in dict(ready.get("checks", {})).items():  # type: ignore[call-overload]
        _say(f"  {name:<10} {'OK' if check['ok'] else 'FAIL'}  {check['detail']}")
    registered = lab.kamailio.registered(SERVICE_USER)
    _say(f"  SIP 注册 / registered as {SERVICE_USER} at Kamailio: {'yes' if registered else 'no'}")
    if seconds > 0:
        _say(f"running for {seconds:.0f} s …")
        time.sleep(seconds)
    else:
        _say("按 Ctrl-C 停止 / press Ctrl-C to stop")
        try:
            while proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    _say("已停止 / stopped")
    return 0 if registered else 1
