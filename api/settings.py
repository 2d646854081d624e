"""Service settings: environment variables prefixed LINKCALL_, optionally a config file.

Only api/ reads settings; everything below it takes plain parameters. The variable names are a
contract (an acceptance check outside the project uses them).
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from api.rate_limit import DialRates, parse_dial_rate
from callflows.ivr import CallOutcome, KeyPromptSettings
from callflows.survey import CallingHours, RetryPolicy, SurveySchedule
from calls.survey_job import SurveyRunSettings
from registry.duty_schedule import InvalidDutyCheckSchedule, parse_schedule
from registry.numbers import DialPolicy
from telephony.sip.config import DISPLAY_RE, NUMBER_RE

CONFIG_FILE_ENV = "LINKCALL_CONFIG"


ENV_PREFIX = "LINKCALL_"
OTHER_VARIABLES = frozenset({
    CONFIG_FILE_ENV,
    "LINKCALL_WORKER_LOG",  # the service to its media workers (calls/log_format.py)
    "LINKCALL_IMAGE_CACHE",  # scripts/build-base-image
    "LINKCALL_HTTP_HOST", "LINKCALL_HTTP_PORT",  # the container's entrypoint (docker/)
    "LINKCALL_IMAGE_TAG", "LINKCALL_PG_DB", "LINKCALL_PG_LISTEN", "LINKCALL_PG_PASSWORD",
    "LINKCALL_PG_PORT", "LINKCALL_PG_USER",  # docker/compose.yaml's own
})  # fmt: skip
"""LINKCALL_* names that are not settings (and LINKCALL_TEST_*, the test suite's)."""


def unknown_settings(environ: Mapping[str, str], config_file: Path | None = None) -> list[str]:
    """What no setting will read: LINKCALL_* names in `environ` and keys of the TOML
    `config_file`, each with the closest setting's name when there is one. A typo would
    otherwise change nothing, silently (the settings ignore names they do not know)."""
    fields = sorted(Settings.model_fields)
    found: list[str] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in OTHER_VARIABLES:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in fields or name.startswith(ENV_PREFIX + "TEST_"):
            continue
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
        found.append(f"environment variable {name} is not a setting{hint}")
    if config_file is not None and config_file.is_file():
        try:
            keys = sorted(tomllib.loads(config_file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            keys = []  # reading the settings reports that, with the reason
        for key in keys:
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                found.append(f"{config_file}: key {key!r} is not a setting{hint}")
    return found


class ConfigFileMissing(ValueError):
    """LINKCALL_CONFIG names a file that does not exist."""


REGISTRAR_EXTENSIONS = r"^[1-9][0-9]{2,5}$"


def parse_hours(value: str) -> tuple[time, time]:
    """`08:30-21:00` as two times; ValueError when malformed."""
    start, sep, end = value.partition("-")
    if not sep:
        raise ValueError(f"calling hours must be HH:MM-HH:MM, got {value!r}")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def key_map_of(value: str) -> dict[str, str]:
    """`1=satisfied,2=...` as a dict (keypad digit → stored answer); ValueError when malformed."""
    out: dict[str, str] = {}
    for part in value.split(","):
        digit, sep, answer = part.strip().partition("=")
        if not sep or len(digit) != 1 or digit not in "0123456789*#" or not answer:
            raise ValueError(f"keys must be digit=answer pairs, got {part!r}")
        out[digit] = answer.strip()
    return out


def _host_port(value: str, name: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{name} must be host:port, got {value!r}")
    return host, int(port)


class Settings(BaseSettings):
    """Everything the service can be configured with. Defaults run a local demo."""

    model_config = SettingsConfigDict(env_prefix="LINKCALL_", extra="ignore")

    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty = SQLite file under the data directory"
    )
    data_dir: Path = Field(default=Path("var"), description="recordings, SQLite file, prompts")
    sip_listen: str = Field(default="127.0.0.1:5070", description="host:port the SIP UA binds")
    sip_transport: str = Field(default="udp", description="udp or tcp")
    sip_registrar: str = Field(default="", description="host:port; empty means trunk mode")
    sip_user: str = Field(default="1000")
    sip_password: str = Field(default="", repr=False)
    sip_domain: str = Field(default="", description="SIP domain; default: the registrar host")
    sip_trunk_peer: str = Field(default="", description="host:port of the trunk peer")
    sip_trusted_peers: str = Field(
        default="",
        description="comma-separated trusted peer IPs; '*' = anyone (lab only). Without a "
        "registrar, trunk peer or trusted peers, inbound calls are refused (403)",
    )
    sip_trunk_auth: str = Field(
        default="",
        repr=False,
        description="user:password the trunk peer must answer our digest challenge with "
        "for inbound INVITEs; empty = the trunk is trusted by its address",
    )
    rtp_ports: str = Field(default="20000-29999", description="lo-hi RTP port range")
    media_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="RTP engine processes: 1 = in the service's process; N > 1 = N worker "
        "processes, each with its share of LINKCALL_RTP_PORTS and of the calls",
    )
    dispatcher_seats: str = Field(default="", description="comma-separated numbers/extensions")
    timezone: str = Field(default="Asia/Shanghai", description="the county's time zone")
    phone_region: str = Field(default="CN", description="default region for phone numbers")
    extensions_pattern: str | None = Field(
        default=None,
        description="internal extensions the dial policy allows; unset: none in trunk mode, "
        f"{REGISTRAR_EXTENSIONS!r} with a registrar (the PBX's own extensions); empty: none",
    )
    log_level: str = Field(default="INFO")
    log_format: str = Field(
        default="text", pattern="^(text|json)$", description="text, or json: one object a line"
    )
    metrics_listen: str = Field(
        default="", description="host:port of the Prometheus /metrics listener; empty = off"
    )
    recording_retention_days: int = Field(
        default=0, ge=0, le=36500, description="purge recordings older than this (0: keep all)"
    )
    disk_min_free_mb: int = Field(
        default=1024, ge=0, description="below this free space /readyz degrades (0: no check)"
    )
    evidence_jobs_at: str = Field(
        default="03:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="daily time (county) of the retention purge and the hash verification",
    )
    ring_timeout_dispatcher_s: float = Field(default=20.0, gt=0, le=300)
    ring_timeout_caller_s: float = Field(default=40.0, gt=0, le=300)
    ring_timeout_unit_s: float = Field(
        default=25.0, gt=0, le=300, description="per number of the unit's dial list"
    )
    bridge_dial_order: str = Field(
        default="dispatcher_first",
        pattern="^(dispatcher_first|all_at_once)$",
        description="dispatcher_first: the seat, then caller and unit together; all_at_once",
    )
    bridge_dial_deadline_s: float = Field(
        default=180.0, gt=0, le=1800, description="a bridge never dials longer than this"
    )
    inbound_ring_deadline_s: float = Field(
        default=30.0, gt=0, le=600, description="how long dispatcher seats ring"
    )
    duty_check_ring_timeout_s: float = Field(default=45.0, gt=0, le=300)
    extension_delay_ms: int = Field(
        default=1500, ge=0, le=30000, description="after the answer, before keying in 转8001"
    )
    unit_confirm: bool = Field(default=True, description="a unit joins only after pressing 1")
    unit_confirm_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="waiting for the key after each prompt"
    )
    unit_confirm_extension_timeout_s: float = Field(
        default=40.0, gt=0, le=600, description="window for the key after an extension's digits"
    )
    caller_id_name: str = Field(default="110指挥中心", description="From display name")
    caller_id_number: str = Field(default="", description="From user; default: the SIP user")
    media_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="end a connected leg that sent no RTP this long (0: never)",
    )
    recover_calls: bool = Field(
        default=True,
        description="after a crash or a planned stop (SIGTERM), the next start re-INVITEs the"
        " parties of the connected three-way calls and carries them on (else BYE them)",
    )
    recover_timeout_s: float = Field(
        default=4.0, gt=0, le=30, description="each recovery re-INVITE's deadline"
    )
    roster_reminder: str = Field(
        default="fri 15:00",
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun) ([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="when units without next week's roster are listed (county time)",
    )
    node_name: str = Field(default="", description="this node's name (default: the hostname)")
    node_url: str = Field(default="", description="this node's API base URL, for the other nodes")
    node_heartbeat_s: float = Field(default=5.0, gt=0, le=60, description="heartbeat period")
    node_lease_s: float = Field(
        default=30.0, gt=0, le=3600, description="a node silent this long is declared lost"
    )
    duty_check_schedule: str = Field(
        default="",
        description="scheduled 查岗: `daily 02:00 sample=5`, `weekly sun 20:00 all`; `;` between",
    )
    duty_check_poll_s: float = Field(
        default=15.0, gt=0, le=3600, description="how often due scheduled checks are claimed"
    )

    # ---- outbound webhook (SMS gateway / chat bot) ----
    webhook_url: str = Field(default="", description="http(s) URL events are POSTed to")
    webhook_secret: str = Field(default="", repr=False, description="HMAC-SHA256 key")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120, description="per attempt")
    webhook_poll_s: float = Field(default=15.0, gt=0, le=3600)
    webhook_retry_s: float = Field(default=30.0, gt=0, description="first retry after failing")
    webhook_max_delay_s: float = Field(default=3600.0, gt=0, description="retry back-off cap")
    event_retention_h: float = Field(
        default=24.0, gt=0, le=24 * 90, description="stored events (PostgreSQL) kept this long"
    )

    # ---- the HTTP edge (docs/security.md) ----
    http_max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="larger request bodies get 413"
    )
    dial_rate: str = Field(
        default="per_token=10/min,global=60/min",
        description="calls placed through the API: per token and for the whole service; off",
    )
    token_ttl_days: float = Field(
        default=90, ge=0, description="default lifetime of new tokens (0: they never expire)"
    )
    api_docs: bool = Field(default=True, description="serve /docs (local Swagger UI assets)")
    tls_cert: Path | None = Field(default=None, description="PEM certificate: serve HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")

    # ---- callback surveys (LINKCALL_SURVEY_*; docs/surveys.md) ----
    divert_accept_minutes: float = Field(
        default=30.0, gt=0, description="a diverted incident not accepted within this is overdue"
    )
    survey_enabled: bool = Field(default=True, description="place survey calls from this node")
    survey_hours: str = Field(default="08:30-21:00", description="calling hours, HH:MM-HH:MM")
    survey_delay_after_close_s: float = Field(default=3600.0, ge=0)
    survey_max_attempts: int = Field(default=3, ge=1, le=20)
    survey_retry_no_answer_s: float = Field(default=1800.0, gt=0)
    survey_retry_busy_s: float = Field(default=600.0, gt=0)
    survey_retry_failed_s: float = Field(default=3600.0, gt=0)
    survey_retry_no_key_s: float = Field(default=3600.0, gt=0)
    survey_backoff: float = Field(default=2.0, ge=1)
    survey_max_delay_s: float = Field(default=43200.0, gt=0)
    survey_keys: str = Field(default="1=satisfied,2=basically_satisfied,3=unsatisfied")
    survey_rework_answers: str = Field(default="unsatisfied", description="comma-separated")
    survey_poll_s: float = Field(
        default=15.0, gt=0, description="how often due surveys are claimed"
    )
    survey_lease_s: float = Field(default=300.0, gt=0, description="claim lease, renewed in calls")
    survey_max_concurrent: int = Field(default=10, ge=1, description="survey calls at once")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init kwargs win, then the environment, then an optional TOML file (LINKCALL_CONFIG)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigFileMissing(
                    f"{CONFIG_FILE_ENV} points to a missing file: {config_file}"
                )
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("sip_listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        _host_port(v, "LINKCALL_SIP_LISTEN")
        return v

    @field_validator("metrics_listen")
    @classmethod
    def _check_metrics(cls, v: str) -> str:
        if v:
            _host_port(v, "LINKCALL_METRICS_LISTEN")
        return v

    @field_validator("sip_registrar", "sip_trunk_peer")
    @classmethod
    def _check_peer(cls, v: str) -> str:
        if v:
            _host_port(v, "SIP peer")
        return v

    @field_validator("sip_trunk_auth")
    @classmethod
    def _check_trunk_auth(cls, v: str) -> str:
        if v and (":" not in v or not v.partition(":")[0] or not v.partition(":")[2]):
            raise ValueError("LINKCALL_SIP_TRUNK_AUTH must be user:password")
        return v

    @field_validator("sip_transport")
    @classmethod
    def _check_transport(cls, v: str) -> str:
        if v.lower() not in ("udp", "tcp"):
            raise ValueError("LINKCALL_SIP_TRANSPORT must be udp or tcp")
        return v.lower()

    @field_validator("rtp_ports")
    @classmethod
    def _check_rtp(cls, v: str) -> str:
        lo, sep, hi = v.partition("-")
        if not sep or not lo.isdigit() or not hi.isdigit():
            raise ValueError(f"LINKCALL_RTP_PORTS must be lo-hi, got {v!r}")
        if not 1024 <= int(lo) < int(hi) <= 65535:
            raise ValueError(f"LINKCALL_RTP_PORTS out of range: {v!r}")
        return v

    @field_validator("survey_hours")
    @classmethod
    def _check_hours(cls, v: str) -> str:
        parse_hours(v)
        return v

    @field_validator("duty_check_schedule")
    @classmethod
    def _check_duty_schedule(cls, v: str) -> str:
        try:
            parse_schedule(v)
        except InvalidDutyCheckSchedule as exc:
            raise ValueError(f"LINKCALL_DUTY_CHECK_SCHEDULE: {exc}") from exc
        return v

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, v: str) -> str:
        if v and not (v.startswith(("http://", "https://")) and len(v.split("/", 3)[2]) > 0):
            raise ValueError(f"LINKCALL_WEBHOOK_URL must be an http(s) URL, got {v!r}")
        return v

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("LINKCALL_WEBHOOK_URL is set but LINKCALL_WEBHOOK_SECRET is empty")
        return self

    @field_validator("survey_keys")
    @classmethod
    def _check_keys(cls, v: str) -> str:
        key_map_of(v)
        return v

    @field_validator("dial_rate")
    @classmethod
    def _check_dial_rate(cls, v: str) -> str:
        parse_dial_rate(v)
        return v

    @field_validator("extensions_pattern")
    @classmethod
    def _check_extensions(cls, v: str | None) -> str | None:
        if v:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"LINKCALL_EXTENSIONS_PATTERN is not a regex: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both LINKCALL_TLS_CERT and LINKCALL_TLS_KEY, or neither")
        pairs = (("LINKCALL_TLS_CERT", self.tls_cert), ("LINKCALL_TLS_KEY", self.tls_key))
        for name, path in pairs:
            if path is not None and not path.is_file():
                raise ValueError(f"{name} points to a missing file: {path}")
        return self

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("caller_id_name")
    @classmethod
    def _check_caller_name(cls, v: str) -> str:
        if v and not DISPLAY_RE.fullmatch(v):
            raise ValueError("caller id name: letters, digits, spaces and + * . ( ) - only")
        return v

    @field_validator("caller_id_number")
    @classmethod
    def _check_caller_number(cls, v: str) -> str:
        if v and not NUMBER_RE.fullmatch(v):
            raise ValueError("caller id number must be a plain SIP user part")
        return v

    # ---- derived values (plain, for the composition root) ----
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'linkcall.sqlite3').resolve()}"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def sip_listen_addr(self) -> tuple[str, int]:
        return _host_port(self.sip_listen, "LINKCALL_SIP_LISTEN")

    @property
    def metrics_addr(self) -> tuple[str, int] | None:
        return _host_port(self.metrics_listen, "metrics") if self.metrics_listen else None

    @property
    def sip_registrar_addr(self) -> tuple[str, int] | None:
        return _host_port(self.sip_registrar, "registrar") if self.sip_registrar else None

    @property
    def sip_trunk_peer_addr(self) -> tuple[str, int] | None:
        return _host_port(self.sip_trunk_peer, "trunk") if self.sip_trunk_peer else None

    @property
    def rtp_port_range(self) -> tuple[int, int]:
        lo, _, hi = self.rtp_ports.partition("-")
        return int(lo), int(hi)

    @property
    def dispatcher_seat_list(self) -> list[str]:
        return [s.strip() for s in self.dispatcher_seats.split(",") if s.strip()]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def node(self) -> str:
        """This node's one name: LINKCALL_NODE_NAME, else the hostname. Its calls, its survey
        claims and its crash recovery go by this name, so two service processes on one host
        need different names."""
        return self.node_name or socket.gethostname()

    @property
    def dial_policy(self) -> DialPolicy:
        """The one dial policy: the county's region and internal extension pattern."""
        return DialPolicy(home_region=self.phone_region, extensions_pattern=self.extensions)

    @property
    def extensions(self) -> str | None:
        """The extension pattern in force: none in trunk mode unless one is configured (a
        short number through a trunk reaches the public network: 911, 999, 17951 ...)."""
        if self.extensions_pattern is not None:
            return self.extensions_pattern or None
        return REGISTRAR_EXTENSIONS if self.sip_registrar else None

    @property
    def token_lifetime(self) -> timedelta | None:
        """How long a new token lives unless its creator says otherwise (None: forever)."""
        return timedelta(days=self.token_ttl_days) if self.token_ttl_days else None

    @property
    def dial_rates(self) -> DialRates:
        return parse_dial_rate(self.dial_rate)

    @property
    def divert_accept_within(self) -> timedelta:
        """How long a unit has to accept a diverted incident before the board shows it overdue."""
        return timedelta(minutes=self.divert_accept_minutes)

    def survey_schedule(self) -> SurveySchedule:
        """The pure scheduling policy (callflows.survey) the survey settings describe."""
        start, end = parse_hours(self.survey_hours)
        delays = {
            CallOutcome.NO_ANSWER: timedelta(seconds=self.survey_retry_no_answer_s),
            CallOutcome.BUSY: timedelta(seconds=self.survey_retry_busy_s),
            CallOutcome.FAILED: timedelta(seconds=self.survey_retry_failed_s),
            CallOutcome.NO_KEY: timedelta(seconds=self.survey_retry_no_key_s),
        }
        return SurveySchedule(
            hours=CallingHours(start, end, self.timezone),
            retry=RetryPolicy(
                max_attempts=self.survey_max_attempts,
                delays=delays,
                backoff=self.survey_backoff,
                max_delay=timedelta(seconds=self.survey_max_delay_s),
            ),
            delay_after_close=timedelta(seconds=self.survey_delay_after_close_s),
        )

    def survey_ivr(self) -> KeyPromptSettings:
        """The survey IVR: the prompts of calls/prompts.py and the configured keys."""
        return KeyPromptSettings(
            prompt_key="survey.question",
            keys=key_map_of(self.survey_keys),
            thanks_key="survey.thanks",
        )

    def survey_run_settings(self) -> SurveyRunSettings:
        """What the survey dispatcher needs."""
        return SurveyRunSettings(
            schedule=self.survey_schedule(),
            ivr=self.survey_ivr(),
            node=self.node,
            rework_answers=frozenset(
                a.strip() for a in self.survey_rework_answers.split(",") if a.strip()
            ),
            lease_s=self.survey_lease_s,
            max_concurrent=self.survey_max_concurrent,
            poll_s=self.survey_poll_s,
        )

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to show (no secrets)."""
        return self.model_dump(exclude={"sip_password", "sip_trunk_auth", "webhook_secret"})
