"""SIPp peers for the lab: answerers (UAS) and callers (UAC) from lab/scenarios/.

Scenario files hold ``{{NAME}}`` placeholders which ``Sipp`` fills in and writes to its
workdir before starting ``sipp``. Constructors for the usual roles:

* ``Sipp.answerer(workdir, media="echo"|"stream"|None, ulaw=..., answer_delay_ms=0)``:
  answers every INVITE with 200 (PCMU); ``echo`` uses ``-rtp_echo``, ``stream`` loops a
  headerless µ-law file to the caller (``lab.audio.make_ulaw_raw``).
* ``Sipp.rejecter(workdir, code=486, reason="Busy Here")``: refuses every INVITE.
* ``Sipp.caller(workdir, target=(host, port), service="2001", from_user="1000",
  auth=("1000", "pw1000"), media=..., dtmf="123", hold_ms=3000, calls=1)``: places calls,
  answering a 401/407 challenge if one comes; ``dtmf`` digits are played as RFC 2833
  packets from /usr/share/sip-tester/dtmf_2833_<d>.pcap, 400 ms apart. The captures are
  replayed verbatim, so digits must follow ``DTMF_CAPTURE_ORDER`` (``"123456789*#0"``)
  without repeats (``check_dtmf_order``).

``start()`` runs sipp in the background (own process group, log file); ``wait()`` waits
for it to finish by itself and returns its exit status (0: all calls succeeded, 1: some
failed, >1: error); ``stop()`` stops it by PID; ``stats()`` reads the last row of the
``-trace_stat`` CSV (``SuccessfulCall(C)``, ``FailedCall(C)``, ...).
"""

from __future__ import annotations

import csv
import itertools
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Literal

from lab import ports
from lab.process import ManagedProcess, ProcessError

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DTMF_PCAPS = Path("/usr/share/sip-tester")
DTMF_NAMES = {"*": "star", "#": "pound"}
# The captures come from one RTP stream (same SSRC); SIPp replays their sequence numbers
# and timestamps unchanged. Receivers drop packets older than what they already saw, so
# only digit strings in this capture order, without repeats, arrive intact.
DTMF_CAPTURE_ORDER = "123456789*#0"

Media = Literal["echo", "stream", "pcap"] | None


def dtmf_pcap(digit: str) -> Path:
    name = DTMF_NAMES.get(digit, digit)
    path = DTMF_PCAPS / f"dtmf_2833_{name}.pcap"
    if not path.exists():
        raise ValueError(f"no RFC 2833 capture for DTMF digit {digit!r} ({path})")
    return path


def check_dtmf_order(digits: str) -> None:
    """Raise ValueError unless ``digits`` can be replayed from the captures intact."""
    pos = [DTMF_CAPTURE_ORDER.find(d) for d in digits]
    if -1 in pos or any(b <= a for a, b in itertools.pairwise(pos)):
        raise ValueError(
            f"SIPp replays the DTMF captures verbatim (one SSRC, fixed sequence numbers): "
            f"digits must follow the order {DTMF_CAPTURE_ORDER!r} without repeats, "
            f"got {digits!r}; use a baresip phone's send_dtmf() for arbitrary digits"
        )


class Sipp:
    """One sipp process running a lab scenario."""

    def __init__(
        self,
        workdir: Path,
        scenario: str | Path,
        values: dict[str, str] | None = None,
        remote: tuple[str, int] | None = None,
        port: int | None = None,
        media_port: int | None = None,
        extra_args: list[str] | None = None,
        calls: int | None = 1,
        timeout_s: float | None = 60.0,
        host: str = HOST,
        netns: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host  # the address to bind (SIP and media)
        self.netns = netns  # run inside this network namespace (lab.netns)
        scen = Path(scenario)
        if not scen.is_absolute() and not scen.exists():
            scen = SCENARIOS / scen.with_suffix(".xml").name
        self.template = scen
        self.values = dict(values or {})
        self.remote = remote
        self._leases = ports.Leases()
        self.port = port if port is not None else self._leases.sip_port()
        self.media_port = media_port if media_port is not None else self._leases.rtp_range(4).lo
        self.extra_args = list(extra_args or [])
        self.calls = calls
        self.timeout_s = timeout_s
        self.scenario_path = self.workdir / self.template.name
        self.stats_path = self.workdir / "stats.csv"
        self.log_path = self.workdir / "sipp.log"
        self._proc: ManagedProcess | None = None

    # ---- constructors for the usual roles ----
    @classmethod
    def answerer(
        cls,
        workdir: Path,
        media: Media = "echo",
        ulaw: Path | None = None,
        answer_delay_ms: int = 0,
        calls: int | None = None,
        **kwargs: Any,
    ) -> Sipp:
        extra = ["-d", str(answer_delay_ms)]
        values = {"SDP_PORT": "[media_port]", "MEDIA_ACTION": ""}
        if media == "echo":
            extra.append("-rtp_echo")
        elif media == "stream":
            if ulaw is None:
                raise ValueError("media='stream' needs ulaw=<raw u-law file>")
            values["SDP_PORT"] = "[rtpstream_audio_port]"
            values["MEDIA_ACTION"] = f'<action><exec rtp_stream="{ulaw},-1,0"/></action>'
        return cls(workdir, "uas", values, calls=calls, extra_args=extra, **kwargs)

    @classmethod
    def rejecter(
        cls,
        workdir: Path,
        code: int = 486,
        reason: str = "Busy Here",
        delay_ms: int = 0,
        calls: int | None = None,
        **kwargs: Any,
    ) -> Sipp:
        values = {"CODE": str(code), "REASON": reason}
        return cls(
            workdir, "uas_reject", values, calls=calls, extra_args=["-d", str(delay_ms)], **kwargs
        )

    @classmethod
    def caller(
        cls,
        workdir: Path,
        target: tuple[str, int],
        service: str,
        from_user: str = "1000",
        auth: tuple[str, str] | None = None,
        domain: str = HOST,
        media: Media = None,
        ulaw: Path | None = None,
        dtmf: str = "",
        hold_ms: int = 3000,
        calls: int = 1,
        rate: float | None = None,
        **kwargs: Any,
    ) -> Sipp:
        values = {
            "DOMAIN": domain,
            "FROM_USER": from_user,
            "HOLD_MS": str(hold_ms),
            "SDP_PORT": "[media_port]",
            "MEDIA_ACTION": "",
            "DTMF": "",
        }
        extra = ["-s", service]
        if auth is not None:
            extra += ["-au", auth[0], "-ap", auth[1]]
        if rate is not None:
            extra += ["-r", f"{rate:g}"]
        if media == "echo":
            extra.append("-rtp_echo")
        elif media == "stream":
            if ulaw is None:
                raise ValueError("media='stream' needs ulaw=<raw u-law file>")
            values["SDP_PORT"] = "[rtpstream_audio_port]"
            values["MEDIA_ACTION"] = f'<action><exec rtp_stream="{ulaw},-1,0"/></action>'
        if dtmf:
            check_dtmf_order(dtmf)
            steps = []
            for d in dtmf:
                steps.append(
                    f'<nop><action><exec play_pcap_audio="{dtmf_pcap(d)}"/></action></nop>'
                )
                steps.append('<pause milliseconds="400"/>')
            values["DTMF"] = "\n  ".join(steps)
        return cls(workdir, "uac", values, remote=target, calls=calls, extra_args=extra, **kwargs)

    # ---- lifecycle ----
    @classmethod
    def info_switchboard(
        cls, workdir: Path, extension: str, confirm_key: str = "1", confirm_delay_ms: int = 2000,
        **kwargs: Any,
    ) -> Sipp:  # fmt: skip
        """A switchboard without telephone-event that expects ``extension`` keyed in by SIP INFO,
        one digit per INFO, in order (any other digit fails the call), then presses
        ``confirm_key`` by INFO; ``-rtp_echo`` keeps the call's media alive."""
        steps: list[str] = []
        for digit in extension:
            pattern = "Signal= *" + ("[*]" if digit == "*" else digit) + "[^0-9*#]"
            steps.append(
                '<recv request="INFO"><action><ereg regexp="' + pattern + '" search_in="body"'
                ' check_it="true" assign_to="got"/><log message="INFO digit [$got]"/>'
                "</action></recv>"
                "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n"
                "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>"
            )
        values = {
            "EXPECT_DIGITS": "\n  ".join(steps),
            "CONFIRM_DELAY_MS": str(confirm_delay_ms),
            "CONFIRM_KEY": confirm_key,
        }
        return cls(workdir, "uas_info_extension", values, extra_args=["-rtp_echo"], **kwargs)

    def render(self) -> Path:
        text = self.template.read_text()
        for k, v in self.values.items():
            text = text.replace("{{" + k + "}}", v)
        if "{{" in text:
            start = text.index("{{")
            raise ValueError(
                f"{self.template.name}: unfilled placeholder {text[start : start + 30]}"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scenario_path.write_text(text)
        return self.scenario_path

    def argv(self) -> list[str]:
        argv = ["sipp"]
        if self.remote is not None:
            argv.append(f"{self.remote[0]}:{self.remote[1]}")
        argv += [
            "-sf",
            str(self.scenario_path),
            "-i",
            self.host,
            "-p",
            str(self.port),
            "-mi",
            self.host,
            "-mp",
            str(self.media_port),
            "-nostdin",
            "-trace_err",
            "-trace_stat",
            "-stf",
            str(self.stats_path),
            "-fd",
            "1",
        ]
        if self.calls is not None:
            argv += ["-m", str(self.calls)]
        if self.timeout_s is not None:
            argv += ["-timeout", f"{self.timeout_s:g}s", "-timeout_error"]
        return argv + self.extra_args

    def start(self) -> None:
        if shutil.which("sipp") is None:
            raise ProcessError("sipp not installed (apt-get install sip-tester)")
        self._leases.claim(self.port, self.media_port)
        self.render()
        argv = self.argv()
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self._proc = ManagedProcess(
            f"sipp-{self.template.stem}",
            argv,
            self.log_path,
            cwd=self.workdir,
            die_with_parent="KILL",
        )
        self._proc.start()
        if self.remote is None:
            # an answerer binds its SIP socket at once; an early exit means a bad
            # scenario or argument (a caller may legitimately finish at once)
            try:
                self._proc.wait_ready(self._bound, 5.0, f"sipp listening on {self.port}")
            except BaseException:
                self.stop()
                raise

    def _bound(self) -> bool:
        if self.netns is not None:  # not visible from here: ask ss inside the namespace
            out = subprocess.run(
                ["ip", "netns", "exec", self.netns, "ss", "-H", "-uln", f"sport = :{self.port}"],
                capture_output=True, text=True, timeout=5, check=False,
            ).stdout  # fmt: skip
            return bool(out.strip())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((HOST, self.port))
            except OSError:
                return True
        return False

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def wait(self, timeout: float = 60.0) -> int:
        if self._proc is None:
            raise ProcessError("sipp not started")
        return self._proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        rc = self._proc.stop(timeout) if self._proc is not None else None
        self._leases.release_all()
        return rc

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def log_text(self) -> str:
        return self._proc.log_text() if self._proc is not None else ""

    def errors_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("*_errors.log"))
        )

    def stats(self) -> dict[str, str]:
        """Last row of sipp's statistics CSV (empty dict before the first dump)."""
        try:
            with self.stats_path.open(newline="") as f:
                rows = list(csv.reader(f, delimiter=";"))
        except FileNotFoundError:
            return {}
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0], rows[-1], strict=False))

    def counter(self, name: str) -> int:
        """A cumulative counter, e.g. ``counter("SuccessfulCall")`` -> SuccessfulCall(C)."""
        value = self.stats().get(f"{name}(C)", "0").strip()
        return int(value) if value.isdigit() else 0

    def response_time(self, rtd: str = "setup") -> float | None:
        """Cumulative average of the scenario's response time ``rtd`` in seconds."""
        value = self.stats().get(f"ResponseTime{rtd}(C)", "").strip()
        parts = value.split(":")
        if len(parts) != 4:
            return None
        h, m, sec, us = (int(x) for x in parts)
        return h * 3600 + m * 60 + sec + us / 1e6

    def __enter__(self) -> Sipp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Sipp {self.template.stem} port={self.port} pid={self.pid}>"
