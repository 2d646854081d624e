"""The example alert rules and Grafana dashboard in docker/ name only metrics the service
exposes, and the exposition of a running app has every metric of issue 14."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
    "linkcall_http_request_seconds_bucket",
    "linkcall_disk_free_bytes",
    "linkcall_disk_low",
    "linkcall_recording_verify_failed",
    "linkcall_recording_verify_last_run_timestamp_seconds",
}


def _exposed(api: ApiHarness) -> set[str]:
    svc = api.client.app.state.service  # type: ignore[attr-defined]
    svc.evidence.verify()
    svc.calls.stats.dial_attempts[("unit", "busy")] += 1  # so the counter has a sample
    svc.calls.stats.recording_problems["write_error"] += 1
    assert api.client.get("/healthz").status_code == 200  # type: ignore[attr-defined]
    text = generate_latest(svc.metrics.registry).decode()
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
