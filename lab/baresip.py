"""Headless baresip 1.0 softphones for the lab, controlled over ``ctrl_tcp``.

Each ``BaresipPhone`` has its own config directory (``WORKDIR/phone-USER``), SIP port
(from ``lab.ports``: baresip also binds TCP on ``sip_port + 1``), RTP port range and
control port (``sip_port + 5``). Its microphone is a WAV (a generated tone, silence, or
a given file) played by the ``aufile`` source; the ``sndfile`` filter records what it
sent (``dump-*-enc.wav``) and what it heard (``dump-*-dec.wav``) per call into
``WORKDIR/phone-USER/rec``; the WAV header is final when the call has ended
(``wait_closed`` waits for it). The player is ``aubridge`` with no paired source, so nothing
spins a CPU.

Control is ctrl_tcp (netstring-framed JSON). One persistent connection is kept; a reader
thread files command responses (matched by token) and events (``self.events``). All
methods are synchronous with deadlines; call them from asyncio via ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lab import ports
from lab.audio import cached_tone_wav, wav_complete
from lab.baresip_ctrl import BaresipError, CtrlClient, Event
from lab.process import ManagedProcess, ProcessError, wait_until

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MODULE_PATH = Path("/usr/lib/baresip/modules")
CTRL_OFFSET = 5  # ctrl_tcp port = sip_port + CTRL_OFFSET (same block of 10)


class BaresipPhone:
    """One baresip softphone with its own account, microphone WAV and recordings.

    ``registrar_host``/``registrar_port`` None makes a phone that does not register
    (``regint=0``): it only listens on ``sip_port`` and can be called directly
    (``phone.direct_uri``) or dial full URIs.
    ``tone_hz`` makes a tone WAV as microphone (shared, cached in ``<tmp>/linkcall-lab-tones``,
    ``tone_seconds`` long); ``wav`` uses a given 8 kHz mono s16 WAV; neither gives silence.
    When the microphone file ends, baresip ends the call ("audio error: end of file"), so
    ``tone_seconds`` (default 30 min) bounds a call's length.
    """

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str | None = None,
        registrar_host: str | None = HOST,
        registrar_port: int | None = 5060,
        tone_hz: float | None = None,
        wav: Path | None = None,
        auto_answer: bool = True,
        codecs: Sequence[str] = ("pcmu",),
        transport: str = "udp",
        sip_port: int | None = None,
        rtp_ports: ports.RtpRange | None = None,
        domain: str | None = None,
        tone_seconds: float = 1800.0,
        tone_amplitude: float = 0.3,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be udp or tcp")
        self.user = user
        self.password = password
        self.registrar_host = registrar_host
        self.registrar_port = registrar_port
        self.domain = domain or registrar_host or HOST
        self.tone_hz = tone_hz
        self.auto_answer = auto_answer
        self.codecs = tuple(codecs)
        self.transport = transport
        self.dir = Path(workdir) / f"phone-{user}"
        self.rec_dir = self.dir / "rec"
        self.log_path = self.dir / "baresip.log"
        self._leases = ports.Leases()
        self.sip_port = sip_port if sip_port is not None else self._leases.sip_port()
        self.ctrl_port = self.sip_port + CTRL_OFFSET
        self.rtp = rtp_ports if rtp_ports is not None else self._leases.rtp_range(20)
        self._wav_given = wav
        self.wav = wav  # set in write_config() when None
        self.tone_seconds = tone_seconds
        self.tone_amplitude = tone_amplitude
        self._proc: ManagedProcess | None = None
        self.ctrl = CtrlClient(self.ctrl_port, f"ua{user}")
        self._presser: threading.Thread | None = None
        self._presser_stop = threading.Event()

    # ---- config ----
    @property
    def registers(self) -> bool:
        return self.registrar_host is not None and self.registrar_port is not None

    @property
    def aor(self) -> str:
        if self.registers:
            return f"sip:{self.user}@{self.domain}:{self.registrar_port}"
        return f"sip:{self.user}@{HOST}:{self.sip_port}"

    @property
    def direct_uri(self) -> str:
        """URI reaching this phone without the registrar."""
        return f"sip:{self.user}@{HOST}:{self.sip_port}"

    def account_line(self) -> str:
        params = [
            f"answermode={'auto' if self.auto_answer else 'manual'}",
            f"audio_codecs={','.join(self.codecs)}",
        ]
        if self.registers:
            params.append("regint=300")
            if self.password is not None:
                params.insert(0, f"auth_pass={self.password}")
            uri = (
                f"<sip:{self.user}@{self.domain}:{self.registrar_port};transport={self.transport}>"
            )
            if self.domain != self.registrar_host:
                params.append(
                    f'outbound="sip:{self.registrar_host}:{self.registrar_port};'
                    f'transport={self.transport}"'
                )
        else:
            params.append("regint=0")
            uri = f"<sip:{self.user}@{HOST}:{self.sip_port}>"
        return uri + ";" + ";".join(params)

    def config_text(self) -> str:
        player = f"aubridge,sink{self.user}-{self.sip_port}"
        lines = [
            ("poll_method", "epoll"),
            ("net_interface", HOST),
            ("sip_listen", f"{HOST}:{self.sip_port}"),
            ("call_local_timeout", "120"),
            ("call_max_calls", "4"),
            ("audio_player", player),
            ("audio_source", f"aufile,{self.wav}"),
            ("audio_alert", player),
            ("audio_level", "no"),
            ("ausrc_format", "s16"),
            ("auplay_format", "s16"),
            ("auenc_format", "s16"),
            ("audec_format", "s16"),
            ("audio_buffer", "20-160"),
            ("rtp_ports", f"{self.rtp.lo}-{self.rtp.hi}"),
            ("rtcp_mux", "no"),
            ("jitter_buffer_delay", "5-10"),
            ("rtp_stats", "no"),
            ("module_path", str(MODULE_PATH)),
            ("module", "g711.so"),
            ("module", "g722.so"),
            ("module", "aufile.so"),
            ("module", "aubridge.so"),
            ("module", "sndfile.so"),
            ("module_tmp", "uuid.so"),
            ("module_tmp", "account.so"),
            ("module_app", "menu.so"),
            ("module_app", "ctrl_tcp.so"),
            ("ctrl_tcp_listen", f"{HOST}:{self.ctrl_port}"),
            ("snd_path", str(self.rec_dir)),
        ]
        return "".join(f"{k:<24}{v}\n" for k, v in lines)

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rec_dir.mkdir(parents=True, exist_ok=True)
        if self._wav_given is None:
            self.wav = cached_tone_wav(self.tone_hz, self.tone_seconds, self.tone_amplitude)
        (self.dir / "config").write_text(self.config_text())
        # the account is added with "uanew" once control is connected, so that no
        # registration event is missed
        (self.dir / "accounts").write_text("")
        (self.dir / "contacts").write_text("")

    # ---- lifecycle ----
    def start(self, timeout: float = 10.0) -> None:
        if shutil.which("baresip") is None:
            raise ProcessError("baresip not installed (apt-get install baresip-core)")
        self._leases.claim(self.sip_port, self.rtp.lo)
        self.write_config()
        self._proc = ManagedProcess(
            f"baresip-{self.user}",
            ["baresip", "-f", self.dir],
            self.log_path,
            cwd=self.dir,
            die_with_parent="KILL",  # on TERM it would wait for its un-REGISTER
        )
        self._proc.start()
        try:
            self._proc.wait_ready(
                lambda: "baresip is ready" in self._proc_log(), timeout, "'baresip is ready'"
            )
            self.ctrl.connect(timeout)
            self.command("uanew", self.account_line())
        except BaseException:
            self.stop()
            raise

    def _proc_log(self) -> str:
        return self._proc.log_text() if self._proc is not None else ""

    def stop(self, timeout: float = 3.0) -> None:
        self._presser_stop.set()
        if self._presser is not None:
            self._presser.join(2.0)
            self._presser = None
        # "quit" ends calls politely (BYE) and exits; when a peer is gone the BYE is never
        # answered, so after a short wait SIGTERM (a second stop request makes baresip
        # quit at once), then SIGKILL after ``timeout``
        if self._proc is not None and self._proc.running():
            with contextlib.suppress(BaresipError, OSError):
                self.ctrl.command("quit", timeout=1.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1.0)
        self.ctrl.close()
        if self._proc is not None:
            self._proc.stop(timeout)
        self._leases.release_all()

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_text(self) -> str:
        return self._proc_log()

    # ---- control ----
    def command(self, cmd: str, params: str | None = None, timeout: float = 5.0) -> str:
        """Run a ctrl_tcp command; return its text output; raise if not ok."""
        resp = self.ctrl.command(cmd, params, timeout)
        if not resp.get("ok", False):
            raise BaresipError(f"ua{self.user}: {cmd} {params or ''} failed: {resp.get('data')}")
        return str(resp.get("data", ""))

    @property
    def events(self) -> list[Event]:
        return self.ctrl.snapshot()

    def event_count(self) -> int:
        return len(self.ctrl.snapshot())

    def wait_event(
        self,
        event_type: str | Sequence[str],
        timeout: float = 10.0,
        since: int = 0,
        pred: Callable[[Event], bool] | None = None,
    ) -> Event:
        """Wait for an event of ``event_type`` (e.g. CALL_ESTABLISHED) at index >= since."""
        types = {event_type} if isinstance(event_type, str) else set(event_type)
        return self.ctrl.wait_event(
            lambda e: e.get("type") in types and (pred is None or pred(e)),
            timeout,
            since,
            f"event {sorted(types)}",
        )

    def reginfo(self) -> str:
        return self.command("reginfo")

    def is_registered(self) -> bool:
        return "OK" in self.reginfo()

    def wait_registered(self, timeout: float = 10.0) -> None:
        if not self.registers:
            return
        wait_until(self.is_registered, timeout, 0.1, f"ua{self.user} registered")

    def registration_failed(self) -> bool:
        return any(e.get("type") == "REGISTER_FAIL" for e in self.events)

    def dial(self, uri: str) -> int:
        """Dial ``uri`` (a full SIP URI or a number in the account's domain).

        Returns the event index from which this call's events can be awaited.
        """
        self._avoid_recording_clash()
        since = self.event_count()
        if not uri.startswith("sip:") and self.registers:
            uri = f"sip:{uri}@{self.domain}:{self.registrar_port}"
        self.command("dial", uri)
        return since

    def _avoid_recording_clash(self) -> None:
        # sndfile names recordings by the wall-clock second (local time) a call's audio
        # starts: a second call starting within the same second would overwrite the first
        now = time.time()
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(now))
        if any(self.rec_dir.glob(f"dump-{stamp}-*.wav")):
            time.sleep(1.0 - (now % 1.0) + 0.01)

    def accept(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        """Hang up the current call; a ringing incoming call is rejected (486 Busy Here)."""
        self.command("hangup")

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """Send RFC 4733 telephone-events for each digit (``sndcode``)."""
        for i, d in enumerate(digits):
            if i:
                time.sleep(gap)
            self.command("sndcode", d)

    def press_on_answer(self, digits: str = "1", delay_s: float = 1.0) -> None:
        """From now on, press ``digits`` (RFC 4733) ``delay_s`` after each call is established:
        the duty officer who answers a bridged call and confirms it (确认接听)."""
        if self._presser is not None:
            raise BaresipError(f"ua{self.user}: already pressing on answer")
        self._presser_stop.clear()
        since = self.event_count()
        self._presser = threading.Thread(
            target=self._press_loop, args=(digits, delay_s, since), daemon=True,
            name=f"baresip-press-{self.user}",
        )  # fmt: skip
        self._presser.start()

    def _press_loop(self, digits: str, delay_s: float, since: int) -> None:
        while not self._presser_stop.is_set():
            events = self.events
            for ev in events[since:]:
                if ev.get("type") == "CALL_ESTABLISHED" and not self._presser_stop.wait(delay_s):
                    try:
                        self.send_dtmf(digits)
                    except (BaresipError, OSError) as exc:
                        log.warning("ua%s: could not press %s: %s", self.user, digits, exc)
            since = len(events)
            self._presser_stop.wait(0.1)

    def received_dtmf(self, since: int = 0) -> str:
        """The keys this phone received (RFC 4733 or SIP INFO), in order, from event ``since``."""
        return "".join(
            str(e.get("param", ""))
            for e in self.events[since:]
            if e.get("type") == "CALL_DTMF_START"
        )

    def caller_names(self, since: int = 0) -> list[str]:
        """The display names of the callers of this phone's calls (From), in order."""
        names: list[str] = []
        for e in self.events[since:]:
            if e.get("type") == "CALL_ESTABLISHED" and e.get("direction") == "incoming":
                names.append(str(e.get("peerdisplayname", "")))
        return names

    def set_auto_answer(self, on: bool) -> None:
        self.command("answermode", "auto" if on else "manual")
        self.auto_answer = on

    def list_calls(self) -> str:
        return self.command("listcalls")

    def call_count(self) -> int:
        out = self.list_calls()
        head = out.strip().splitlines()[0] if out.strip() else ""
        digits = "".join(ch for ch in head.split("(")[-1] if ch.isdigit())
        return int(digits) if digits else 0

    def wait_established(self, timeout: float = 10.0, since: int = 0) -> Event:
        return self.wait_event("CALL_ESTABLISHED", timeout, since)

    def wait_closed(self, timeout: float = 10.0, since: int = 0) -> Event:
        """Wait for CALL_CLOSED, then (up to 2 s) for the recordings' WAV headers."""
        ev = self.wait_event("CALL_CLOSED", timeout, since)
        self.wait_recordings_complete(2.0)
        return ev

    def wait_recordings_complete(self, timeout: float = 2.0) -> bool:
        """Wait until every recording's WAV header is final (its call has ended)."""
        deadline = time.monotonic() + timeout
        while True:
            if all(wav_complete(p) for p in self.rec_dir.glob("dump-*.wav")):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def wait_incoming(self, timeout: float = 10.0, since: int = 0) -> Event:
        return self.wait_event("CALL_INCOMING", timeout, since)

    # ---- recordings ----
    def received_recordings(self) -> list[Path]:
        """WAVs of what this phone heard, one per call, oldest first."""
        return sorted(self.rec_dir.glob("dump-*-dec.wav"))  # names hold the start time

    def sent_recordings(self) -> list[Path]:
        """WAVs of what this phone sent, one per call, oldest first."""
        return sorted(self.rec_dir.glob("dump-*-enc.wav"))

    def __enter__(self) -> BaresipPhone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<BaresipPhone {self.user} sip={self.sip_port} ctrl={self.ctrl_port} pid={self.pid}>"
        )
