"""`linkcall demo`: the whole product on the embedded defaults, on this machine.

1. Starts the SIP lab: Kamailio (stand-in for the agency's PBX) and three baresip softphones:
   the citizen (400 Hz tone), the dispatcher's seat (1000 Hz) and a unit's duty phone (1800 Hz).
2. Seeds the county's 45 linkage units and 30 townships with this week's rosters; the demo
   unit L01 gets the lab phone 2003 as its on-duty number.
3. Starts `linkcall serve` in its own process on free ports, registered to that Kamailio.
4. Bridges the three phones through the API: the unit's phone hears the prompt 请按1接入通话
   and presses 1 (as a duty officer confirming the call), then the three talk for a few
   seconds; ends the call and prints the recording's files, SHA-256 and what each track holds.
Everything it started is stopped by PID at the end, also on Ctrl-C or an error.
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
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from api.settings import Settings

DEMO_PHONES = (("2001", 400.0), ("2002", 1000.0), ("2003", 1800.0))
SERVICE_USER = "1000"
DEMO_UNIT = "L01"
TALK_S = 5.0


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def _say(msg: str) -> None:
    print(msg, flush=True)  # the demo talks to a person on a terminal


def missing_tools() -> list[str]:
    """System programs the lab needs that are not installed."""
    return [
        t for t in ("kamailio", "baresip", "sipp", "sox", "espeak-ng") if shutil.which(t) is None
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Api:
    """A tiny JSON client for the demo (stdlib only)."""

    def __init__(self, base: str, token: str = "") -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            ok, last = check()
            if ok:
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(0.3)
    raise DemoError(f"{what}: not reached after {timeout:.0f} s (last: {last})")


def run_demo(settings: Settings, *, seconds: float = 0) -> int:
    """Run the demo; returns the process exit code."""
    missing = missing_tools()
    if missing:
        _say(
            f"缺少系统软件 / missing system packages: {', '.join(missing)}\n"
            "  apt-get install -y kamailio baresip-core sip-tester sox espeak-ng"
        )
        return 3
    from lab.session import LabSession

    workdir = (settings.data_dir / "demo").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    _say(f"== linkcall 演示 / demo — 工作目录 / working directory {workdir}")
    try:
        with LabSession(workdir / "lab", phones=DEMO_PHONES) as lab:
            _say(
                f"[1] 实验室 / lab: Kamailio udp:127.0.0.1:{lab.kamailio.udp_port}; 话机 / phones "
                "2001 群众/caller 400 Hz, 2002 调度员/dispatcher 1000 Hz, 2003 单位/unit 1800 Hz"
            )
            env = _service_env(settings, workdir, lab.kamailio.udp_port, lab.users[SERVICE_USER])
            _seed(env)
            return _with_service(env, workdir, lab, seconds, settings.zone)
    except DemoError as exc:
        _say(f"演示失败 / demo failed: {exc}")
        return 1


def _service_env(settings: Settings, workdir: Path, kam_port: int, password: str) -> dict[str, str]:
    from lab import ports

    rtp = ports.rtp_range(200)  # clear of the lab's SIP ports and the ephemeral range
    env = {
        **os.environ,
        "LINKCALL_DATA_DIR": str(workdir / "service"),
        "LINKCALL_SIP_LISTEN": f"127.0.0.1:{_free_port()}",
        "LINKCALL_SIP_REGISTRAR": f"127.0.0.1:{kam_port}",
        "LINKCALL_SIP_USER": SERVICE_USER,
        "LINKCALL_SIP_PASSWORD": password,
        "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
        "LINKCALL_DISPATCHER_SEATS": "2002",
    }
    if settings.database_url:
        env["LINKCALL_DATABASE_URL"] = settings.database_url
    else:
        env.pop("LINKCALL_DATABASE_URL", None)
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "api", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise DemoError(f"linkcall {' '.join(args)} failed: {out.stderr[-800:]}")
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def _seed(env: dict[str, str]) -> None:
    _cli(env, "db", "upgrade")
    from api.settings import Settings as S
    from registry.seed import seed_demo
    from storage.base import utcnow
    from storage.engine import make_engine, make_session_factory, session_scope

    st = S(
        data_dir=Path(env["LINKCALL_DATA_DIR"]), database_url=env.get("LINKCALL_DATABASE_URL", "")
    )
    engine = make_engine(st.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            summary = seed_demo(session, utcnow(), zone=st.zone)
    finally:
        engine.dispose()
    _say(f"[2] 联动单位 / units: {summary}")


def _with_service(
    env: dict[str, str], workdir: Path, lab: Any, seconds: float, zone: ZoneInfo
) -> int:
    admin = _cli(env, "tokens", "create", "--role", "admin", "--name", "demo admin")
    dispatcher = _cli(env, "tokens", "create", "--role", "dispatcher", "--name", "调度台 1")
    supervisor = _cli(env, "tokens", "create", "--role", "supervisor", "--name", "督导员 1")
    unit = _cli(
        env, "tokens", "create", "--role", "unit", "--unit", DEMO_UNIT, "--name", "L01 值班员"
    )
    tokens = (
        ("管理员", "admin", admin),
        ("调度员", "dispatcher", dispatcher),
        ("督导员", "supervisor", supervisor),
        ("单位值班员", f"unit {DEMO_UNIT}", unit),
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / "service.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = _wait("service ready", lambda: _ready(base, proc, admin), 60)
        _say(f"[3] 服务 / service: {base}  (API 文档 / docs: {base}/docs, 日志 / log: {log_path})")
        for name, check in ready["checks"].items():
            _say(f"      {name:<10} {'OK' if check['ok'] else 'FAIL'}  {check['detail']}")
        _say(
            f"      Kamailio 注册 / registered {SERVICE_USER}: "
            f"{'yes' if lab.kamailio.registered(SERVICE_USER) else 'no'}"
        )
        _say_console(base, tokens)
        # the unit's duty officer confirms every bridged call by pressing 1 (确认接听)
        lab.phones["2003"].press_on_answer("1", delay_s=1.0)
        _demo_bridge(Api(base, admin), Api(base, dispatcher), Path(env["LINKCALL_DATA_DIR"]), zone)
        if seconds > 0:
            _say(f"服务继续运行 {seconds:.0f} 秒 / the service keeps running for {seconds:.0f} s …")
            time.sleep(seconds)
        _say("== 演示完成 / demo done")
        return 0
    except KeyboardInterrupt:
        _say("已中断 / interrupted")
        return 130
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _say_console(base: str, tokens: tuple[tuple[str, str, str], ...]) -> None:
    """The console's address and one ready-to-paste token per role (a throwaway demo database:
    the tokens die with it)."""
    _say(f"      控制台 / console: {base}/console — 粘贴令牌登录 / paste a token to sign in:")
    for zh, role, token in tokens:
        _say(f"        {zh:<6} {role:<12} {token}")


def _ready(base: str, proc: subprocess.Popen[bytes], token: str) -> tuple[bool, Any]:
    if proc.poll() is not None:
        raise DemoError(f"the service exited with code {proc.returncode}")
    status, body = Api(base, token).call("GET", "/readyz")  # details need a token (issue 13)
    return status == 200, body


def demo_week(now: datetime, zone: ZoneInfo) -> str:
    """The duty week the service dials from at `now`: the week in the center's zone
    (LINKCALL_TIMEZONE), not in this machine's, which may already or still be another week."""
    from registry.duty import week_of

    return week_of(now, zone)


def _demo_bridge(admin: Api, desk: Api, data_dir: Path, zone: ZoneInfo) -> None:
    from storage.base import utcnow

    week = demo_week(utcnow(), zone)
    status, body = admin.call(
        "PUT",
        f"/api/v1/units/{DEMO_UNIT}/rosters/{week}",
        {
            "leader": {"name": "王主任", "phone": "2003"},
            "staff": [{"name": "值班员 李明", "phone": "2003", "order": 1}],
            "notes": "演示用值班表 / demo roster",
        },
    )
    if status not in (200, 201):
        raise DemoError(f"roster update refused: {status} {body}")
    status, dial = desk.call("GET", f"/api/v1/units/{DEMO_UNIT}/dial-list")
    first = dial["entries"][0] if status == 200 and dial.get("entries") else {}
    _say(
        f"[4] 三方通话 / three-way call: 单位 {DEMO_UNIT} 值班电话 / duty phone "
        f"{first.get('display', '?')} ({first.get('name', '?')})"
    )
    if first.get("number") != DEMO_PHONES[2][0]:
        raise DemoError(
            f"the unit's dial list ({dial.get('week', '?') if status == 200 else status}) does "
            f"not start with the lab phone {DEMO_PHONES[2][0]} of the roster just saved for {week}"
        )
    status, bridge = desk.call(
        "POST",
        "/api/v1/bridges",
        {
            "caller": {"number": "2001"},
            "dispatcher": {"number": "2002"},
            "unit": {"unit_code": DEMO_UNIT},
        },
    )
    if status != 202:
        raise DemoError(f"bridge refused: {status} {bridge}")
    bid = bridge["id"]
    body = _wait("all three connected", lambda: _all_connected(desk, bid), 60)
    unit = next(leg for leg in body["legs"] if leg["role"] == "unit")
    if unit["attempts"] and unit["attempts"][-1].get("confirmed_at"):
        _say("      单位值班员按1确认接听 / the unit's duty officer pressed 1 to take the call")
    _say(f"      已接通 / connected — 通话 {TALK_S:.0f} 秒 / talking for {TALK_S:.0f} s")
    time.sleep(TALK_S)
    desk.call("POST", f"/api/v1/bridges/{bid}/end")
    body = _wait("bridge ended", lambda: _bridge_state(desk, bid, "ended"), 20)
    for leg in body["legs"]:
        _say(
            f"      {leg['role']:<10} {leg['number']:<6} {leg['state']:<10} "
            f"attempts: {[(a['number'], a['result']) for a in leg['attempts']]}"
        )
    meta = _wait("recording finalised", lambda: _recording(desk, body["recording_id"]), 20)
    _say(
        f"[5] 同步录音 / recording {meta['id']}: {meta['duration_s']:.1f} s, "
        f"sha256 {meta['sha256']}"
    )
    root = data_dir / "recordings"
    for role, track in meta["tracks"].items():
        _say(
            f"      {role:<10} {root / track['file']}  sha256 {track['sha256'][:16]}…  "
            f"{_tones(root / track['file'])}"
        )


def _bridge_state(api: Api, bid: str, state: str) -> tuple[bool, Any]:
    status, body = api.call("GET", f"/api/v1/bridges/{bid}")
    if status == 200 and body["state"] == "failed":
        raise DemoError(f"bridge failed: {body['end_reason']}{_attempts(body)}")
    return status == 200 and body["state"] == state, body


def _attempts(body: dict[str, Any]) -> str:
    """Each leg's dial attempts, one line each: what a person needs to see why a call failed."""
    return "".join(
        f"\n        {leg['role']:<10} {leg['state']:<12} "
        f"{[(a['number'], a['result']) for a in leg.get('attempts', [])]}"
        for leg in body.get("legs", [])
    )


def _all_connected(api: Api, bid: str) -> tuple[bool, Any]:
    """Every party connected: the unit only once it pressed 1 (it hears a prompt before)."""
    ok, body = _bridge_state(api, bid, "connected")
    return ok and all(leg["state"] == "connected" for leg in body["legs"]), body


def _recording(api: Api, rec_id: str | None) -> tuple[bool, Any]:
    if rec_id is None:
        return False, None
    status, body = api.call("GET", f"/api/v1/recordings/{rec_id}")
    return status == 200 and body["state"] == "finalised", body


def _tones(path: Path) -> str:
    from lab.audio import tone_report

    levels = tone_report(path, [hz for _, hz in DEMO_PHONES], start=1.0)
    return " ".join(f"{int(hz)}Hz={db:.0f}dB" for hz, db in levels.items())
