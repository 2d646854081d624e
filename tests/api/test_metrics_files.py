"""The example alert rules and Grafana dashboard in docker/ name only metrics the service
exposes, and the exposition of a running app has every metric of issue 14."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ApiHarness

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "linkcall_calls_active",
    "linkcall_legs_active",
    "linkcall_dial_attempts_total",
    "linkcall_sip_registered",
    "linkcall_media_tick_lag_seconds_bucket",
    "linkcall_rtp_packets_lost_total",
    "linkcall_recordings_total",
    "linkcall_recording_problems_total",
    "linkcall_surveys",
    "linkcall_reminders",
    "linkcall_http_request_seconds_bucket",
    "linkcall_disk_free_bytes",
    "linkcall_disk_low",
    "linkcall_recording_verify_failed",
    "linkcall_recording_verify_last_run_timestamp_seconds",
}


def _exposed(api: ApiHarness) -> set[str]:
    from storage.engine import session_scope
    from storage.models.registry import Unit, UnitKind
    from storage.models.reminders import ReminderStatus, RosterReminderCall

    svc = api.client.app.state.service  # type: ignore[attr-defined]
    with session_scope(svc.session_factory) as s:
        unit = Unit(code="L07", name="县供电公司", kind=UnitKind.LINKAGE)
        s.add(unit)
        s.flush()
        for status in (
            ReminderStatus.ACKNOWLEDGED,
            ReminderStatus.ACKNOWLEDGED,
            ReminderStatus.BUSY,
        ):
            s.add(
                RosterReminderCall(
                    run_id="r1", unit_id=unit.id, week="2026-W50", number="2003", status=status
                )
            )
    svc.evidence.verify()
    svc.calls.stats.dial_attempts[("unit", "busy")] += 1  # so the counter has a sample
    svc.calls.stats.recording_problems["write_error"] += 1
    assert api.client.get("/healthz").status_code == 200  # type: ignore[attr-defined]
    text = generate_latest(svc.metrics.registry).decode()
    assert 'linkcall_reminders{outcome="acknowledged"} 2.0' in text
    assert 'linkcall_reminders{outcome="busy"} 1.0' in text
    assert "2003" not in text  # (the reminder's number is nowhere in the exposition)
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_metric_of_the_issue_is_exposed_and_the_examples_use_only_exposed_ones(
    api: ApiHarness,
) -> None:
    exposed = _exposed(api)
    assert exposed >= REQUIRED, REQUIRED - exposed
    rules = (ROOT / "docker/prometheus/linkcall-alerts.yml").read_text(encoding="utf-8")
    dashboard = (ROOT / "docker/grafana/linkcall-dashboard.json").read_text(encoding="utf-8")
    json.loads(dashboard)
    for name, text in (("alert rules", rules), ("dashboard", dashboard)):
        used = set(re.findall(r"\blinkcall_[a-z_]+\b", text))
        assert used, name
        assert used <= exposed, f"{name} use metrics nobody exposes: {used - exposed}"
    for alert in ("SipRegistrationLost", "RecordingProblems", "MediaTickLag", "DiskLow"):
        assert f"alert: Linkcall{alert}" in rules


def test_a_metrics_address_in_use_degrades_readiness_but_the_service_starts(
    tmp_path: Path,
) -> None:
    import socket

    from fastapi.testclient import TestClient

    from api.app import create_app
    from storage.engine import session_scope
    from storage.models.auth import Role
    from storage.tokens import create_token
    from tests.conftest import service_settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = service_settings(tmp_path, metrics_listen=f"127.0.0.1:{port}")
        app = create_app(settings)  # type: ignore[arg-type]
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            with session_scope(app.state.service.session_factory) as s:
                token = create_token(s, name="ops", role=Role.SUPERVISOR, unit_code=None)
            ready = client.get("/readyz", headers={"Authorization": f"Bearer {token}"})
            assert ready.status_code == 503
            assert "cannot listen" in ready.json()["checks"]["metrics"]["detail"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("metrics_listen", "9464", "LINKCALL_METRICS_LISTEN must be host:port"),
        ("log_format", "xml", "log_format"),
        ("recording_retention_days", -1, "recording_retention_days"),
        ("evidence_jobs_at", "25:00", "evidence_jobs_at"),
    ],
)
def test_bad_operations_settings_are_refused_clearly(
    tmp_path: Path, name: str, value: object, says: str
) -> None:
    from pydantic import ValidationError

    from tests.conftest import service_settings

    with pytest.raises(ValidationError, match=says):
        service_settings(tmp_path, **{name: value})
