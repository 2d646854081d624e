"""Issue 14, evidence kept right: retention under legal hold, the daily hash verification and
the free-disk watch, through the running app on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from sqlalchemy import text

from api.app import create_app
from calls.recording_rows import apply_info
from recordings import RecordingWriter
from storage.engine import session_scope
from storage.models.auth import Role
from storage.models.call_records import Call, CallKind, CallState, Recording
from storage.tokens import create_token
from tests.conftest import ApiHarness, service_settings
from tests.recordings.rec_audio import tone_frame

NOW = datetime.now(UTC)


@pytest.fixture
def app_on(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ApiHarness]:
    overrides = {"recording_retention_days": 30, **getattr(request, "param", {})}
    settings = service_settings(tmp_path, database_url=db_url, **overrides)
    app = create_app(settings)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.service.session_factory
        with session_scope(factory) as s:
            tokens = {
                r.value: create_token(s, name=f"{r.value} Wang", role=r, unit_code=None)
                for r in (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN)
            }
        harness = ApiHarness(client, tokens, factory)
        harness.app = app  # type: ignore[attr-defined]
        yield harness


def _recorded_call(h: ApiHarness, started: datetime) -> str:
    """A finished bridge with a real sealed recording that started at `started`."""
    svc = h.app.state.service  # type: ignore[attr-defined]
    root = svc.settings.recordings_dir.resolve()
    with session_scope(h.session_factory) as s:  # type: ignore[arg-type]
        call = Call(
            kind=CallKind.BRIDGE,
            state=CallState.ENDED,
            created_at=started,
            connected_at=started,
            ended_at=started + timedelta(seconds=2),
        )
        s.add(call)
        s.flush()
        writer = RecordingWriter(root, call.id, clock=lambda: started)
        for tick in range(100):
            frame = tone_frame(400, tick)
            writer.write(frame, {"caller": frame, "unit": tone_frame(1800, tick)})
        info = writer.finalise()
        rec = Recording(
            id=call.id,
            call_id=call.id,
            directory=str(info.directory.relative_to(root)),
            started_at=started,
            finalised_at=started + timedelta(seconds=2),
        )
        apply_info(rec, info, root)
        s.add(rec)
        return call.id


def _get(h: ApiHarness, path: str, role: str = "supervisor", **kw: object) -> object:
    resp = h.client.get(path, headers=h.auth(role), **kw)  # type: ignore[attr-defined]
    assert resp.status_code == 200, resp.text
    return resp.json()


def _audit(h: ApiHarness, rec_id: str) -> list[tuple[str, str]]:
    entries = _get(h, "/api/v1/audit", params={"resource_id": rec_id})
    return [(e["action"], e["actor"]) for e in entries]  # type: ignore[attr-defined]


def _events(h: ApiHarness, prefix: str) -> list[Any]:
    """The service's events of a kind, once the first has arrived: events go through the shared
    event stream (stored, then delivered by its writer thread), so they show up a moment after
    the code that published them returned."""
    bus = h.app.state.service.events  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        found = [e for e in bus.since(0) if e.type.startswith(prefix)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _run_daily(h: ApiHarness) -> None:
    svc = h.app.state.service  # type: ignore[attr-defined]
    assert "evidence.daily" in svc.scheduler.job_ids()
    h.client.portal.call(svc.evidence.run_daily)  # type: ignore[attr-defined]
    assert svc.evidence.last_daily_error is None


def test_retention_purges_only_what_no_legal_hold_keeps_and_audits_both(app_on: ApiHarness) -> None:
    h = app_on
    held = _recorded_call(h, NOW - timedelta(days=100))
    unheld = _recorded_call(h, NOW - timedelta(days=100))
    fresh = _recorded_call(h, NOW - timedelta(days=5))
    root = h.app.state.service.settings.recordings_dir  # type: ignore[attr-defined]
    dirs = {
        r: root / _get(h, f"/api/v1/recordings/{r}")["tracks"]["mixed"]["file"]  # type: ignore[index]
        for r in (held, unheld, fresh)
    }
    assert all(p.is_file() for p in dirs.values())

    c = h.client
    refused = c.post(
        f"/api/v1/recordings/{held}/hold", json={"reason": "x"}, headers=h.auth("dispatcher")
    )  # type: ignore[attr-defined]
    assert refused.status_code == 403
    no_reason = c.post(f"/api/v1/recordings/{held}/hold", json={}, headers=h.auth("supervisor"))  # type: ignore[attr-defined]
    assert no_reason.status_code == 422
    assert no_reason.headers["content-type"].startswith("application/problem+json")
    resp = c.post(  # type: ignore[attr-defined]
        f"/api/v1/recordings/{held}/hold",
        json={"reason": "案件 2026-117 证据 / evidence in case 2026-117"},
        headers=h.auth("supervisor"),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["legal_hold"] is True and resp.json()["held_by"] == "supervisor Wang"
    missing = c.post("/api/v1/recordings/nope/hold", json={"reason": "x"}, headers=h.auth("admin"))  # type: ignore[attr-defined]
    assert missing.status_code == 404

    _run_daily(h)

    assert dirs[held].is_file() and dirs[fresh].is_file()
    assert not dirs[unheld].exists() and not dirs[unheld].parent.exists()
    held_meta = _get(h, f"/api/v1/recordings/{held}")
    unheld_meta = _get(h, f"/api/v1/recordings/{unheld}")
    assert held_meta["state"] == "finalised" and held_meta["legal_hold"] is True  # type: ignore[index]
    assert unheld_meta["state"] == "purged" and unheld_meta["purged_at"] is not None  # type: ignore[index]
    assert unheld_meta["sha256"]  # type: ignore[index]  # the record of what existed stays
    assert _get(h, f"/api/v1/recordings/{fresh}")["state"] == "finalised"  # type: ignore[index]
    assert ("recording.hold", "supervisor Wang") in _audit(h, held)
    assert ("recording.purge", "system") in _audit(h, unheld)
    assert not any(a == "recording.purge" for a, _ in _audit(h, held))
    # verified in the same daily run: intact
    assert held_meta["health"]["ok"] is True and held_meta["verified_at"]  # type: ignore[index]

    # a purged recording cannot be held; a released one is purged at the next run
    gone = c.post(
        f"/api/v1/recordings/{unheld}/hold", json={"reason": "late"}, headers=h.auth("admin")
    )  # type: ignore[attr-defined]
    assert gone.status_code == 409
    rel = c.post(f"/api/v1/recordings/{held}/release", headers=h.auth("admin"))  # type: ignore[attr-defined]
    assert rel.status_code == 200 and rel.json()["legal_hold"] is False
    assert ("recording.release", "admin Wang") in _audit(h, held)
    _run_daily(h)
    assert not dirs[held].exists()
    assert _get(h, f"/api/v1/recordings/{held}")["state"] == "purged"  # type: ignore[index]


def test_daily_verification_flags_an_altered_track_in_health_metrics_and_status(
    app_on: ApiHarness,
) -> None:
    h = app_on
    rec_id = _recorded_call(h, NOW - timedelta(days=1))
    root = h.app.state.service.settings.recordings_dir  # type: ignore[attr-defined]
    unit = root / _get(h, f"/api/v1/recordings/{rec_id}")["tracks"]["unit"]["file"]  # type: ignore[index]
    _run_daily(h)
    assert _get(h, f"/api/v1/recordings/{rec_id}")["health"]["ok"] is True  # type: ignore[index]

    unit.chmod(0o644)
    with open(unit, "r+b") as f:
        f.seek(1000)
        f.write(b"\x01" * 32)
    _run_daily(h)
    meta = _get(h, f"/api/v1/recordings/{rec_id}")
    assert meta["health"]["ok"] is False  # type: ignore[index]
    assert {f["problem"] for f in meta["health"]["findings"]} == {"hash_mismatch"}  # type: ignore[index]
    assert hashlib.sha256(unit.read_bytes()).hexdigest() != meta["tracks"]["unit"]["sha256"]  # type: ignore[index]
    text = generate_latest(h.app.state.service.metrics.registry).decode()  # type: ignore[attr-defined]
    assert 'linkcall_recording_problems_total{kind="hash_mismatch"} 1.0' in text
    assert "linkcall_recording_verify_failed 1.0" in text
    status = _get(h, "/api/v1/ops/status", role="dispatcher")
    assert [b["recording_id"] for b in status["verification"]["bad"]] == [rec_id]  # type: ignore[index]
    assert [e.data["bad"] for e in _events(h, "recording.problems")] == [[rec_id]]
    _run_daily(h)  # the same problem found again is not counted again
    text = generate_latest(h.app.state.service.metrics.registry).decode()  # type: ignore[attr-defined]
    assert 'linkcall_recording_problems_total{kind="hash_mismatch"} 1.0' in text


@pytest.mark.parametrize("app_on", [{"disk_min_free_mb": 10**9}], indirect=True)
def test_low_disk_degrades_readiness_and_is_recorded(app_on: ApiHarness) -> None:
    h = app_on
    ready = h.client.get("/readyz", headers=h.auth("dispatcher"))  # type: ignore[attr-defined]
    assert ready.status_code == 503
    check = ready.json()["checks"]["evidence"]
    assert check["ok"] is False and "calls still connect" in check["detail"]
    status = _get(h, "/api/v1/ops/status", role="dispatcher")
    assert status["disk"]["low"] is True and status["disk"]["low_since"]  # type: ignore[index]
    text = generate_latest(h.app.state.service.metrics.registry).decode()  # type: ignore[attr-defined]
    assert "linkcall_disk_low 1.0" in text
    assert 'linkcall_recording_problems_total{kind="disk_low"} 1.0' in text
    entries = _get(h, "/api/v1/audit", params={"resource_type": "disk"})
    assert [e["action"] for e in entries] == ["disk.low"]  # type: ignore[attr-defined]
    assert [e.type for e in _events(h, "disk.")] == ["disk.low"]


def _full_audit(h: ApiHarness, rec_id: str) -> list[tuple[str, dict[str, Any]]]:
    entries = _get(h, "/api/v1/audit", params={"resource_id": rec_id})
    return [(e["action"], e["detail"]) for e in reversed(entries)]  # type: ignore[call-overload]


def test_a_failed_purge_is_audited_and_the_recording_kept_on_record(
    app_on: ApiHarness, mocker: Any
) -> None:
    """The disk refuses the deletion half-way: part of the evidence is gone. The purge's audit
    entry is committed before any file goes; the failure is audited with the files left, the
    row goes back to `finalised`, and the verification of the same daily run flags the hole."""
    import calls.evidence as evidence

    h = app_on
    rec_id = _recorded_call(h, NOW - timedelta(days=100))
    real = evidence.shutil.rmtree

    def refuse_half_way(path: Any, *args: Any, **kwargs: Any) -> None:
        (Path(path) / "mixed.wav").unlink()
        raise OSError(5, "Input/output error")

    mocker.patch.object(evidence.shutil, "rmtree", side_effect=refuse_half_way)
    _run_daily(h)
    mocker.patch.object(evidence.shutil, "rmtree", side_effect=real)

    meta = _get(h, f"/api/v1/recordings/{rec_id}")
    assert meta["state"] == "finalised" and meta["purged_at"] is None  # type: ignore[index]
    log = _full_audit(h, rec_id)
    actions = [a for a, _ in log]
    assert actions[:2] == ["recording.purge", "recording.purge_failed"], actions
    failed = log[1][1]
    assert "Input/output error" in failed["error"]
    assert "mixed.wav" not in failed["files_left"] and "caller.wav" in failed["files_left"]
    assert meta["health"]["ok"] is False  # type: ignore[index]
    assert ("missing_file", "mixed") in {
        (f["problem"], f["track"])
        for f in meta["health"]["findings"]  # type: ignore[index]
    }


def test_a_hold_set_while_the_purge_runs_keeps_the_recording(
    app_on: ApiHarness, mocker: Any
) -> None:
    """The candidates are listed, then a supervisor puts one of them under legal hold before
    the purge reaches it: the purge reads each row again and keeps it."""
    import calls.evidence as evidence

    h = app_on
    first = _recorded_call(h, NOW - timedelta(days=101))
    second = _recorded_call(h, NOW - timedelta(days=100))
    real = evidence._remove_tree
    held: list[int] = []

    def hold_the_other(directory: Path) -> None:
        if not held:
            held.append(1)
            r = h.client.post(  # type: ignore[attr-defined]
                f"/api/v1/recordings/{second}/hold",
                json={"reason": "案件 2026-118"},
                headers=h.auth("supervisor"),
            )
            assert r.status_code == 200, r.text
        real(directory)

    mocker.patch.object(evidence, "_remove_tree", side_effect=hold_the_other)
    _run_daily(h)
    assert _get(h, f"/api/v1/recordings/{first}")["state"] == "purged"  # type: ignore[index]
    kept = _get(h, f"/api/v1/recordings/{second}")
    assert kept["state"] == "finalised" and kept["legal_hold"] is True  # type: ignore[index]
    assert kept["health"]["ok"] is True  # type: ignore[index]  # its files are all there
    assert "recording.purge" not in [a for a, _ in _full_audit(h, second)]


def test_daily_verification_checks_the_seal_itself(app_on: ApiHarness) -> None:
    """SHA256SUMS is the seal (its SHA-256 is the recording's `sha256`); a changed or missing
    SHA256SUMS used to pass the verification as long as the tracks matched manifest.json."""
    h = app_on
    changed = _recorded_call(h, NOW - timedelta(days=1))
    gone = _recorded_call(h, NOW - timedelta(days=1))
    root = h.app.state.service.settings.recordings_dir  # type: ignore[attr-defined]

    def sums(rec_id: str) -> Path:
        mixed = _get(h, f"/api/v1/recordings/{rec_id}")["tracks"]["mixed"]["file"]  # type: ignore[index]
        return root / Path(mixed).parent / "SHA256SUMS"

    _run_daily(h)
    assert _get(h, f"/api/v1/recordings/{changed}")["health"]["ok"] is True  # type: ignore[index]
    sums(changed).chmod(0o644)
    with sums(changed).open("a") as f:
        f.write("0" * 64 + "  extra.wav\n")
    sums(gone).chmod(0o644)
    sums(gone).unlink()
    _run_daily(h)
    for rec_id, problem in ((changed, "hash_mismatch"), (gone, "missing_file")):
        health = _get(h, f"/api/v1/recordings/{rec_id}")["health"]  # type: ignore[index]
        assert health["ok"] is False, health
        assert [(f["problem"], f["track"]) for f in health["findings"]] == [(problem, None)]
        assert "SHA256SUMS" in health["findings"][0]["detail"]


@pytest.mark.parametrize("at", ["after_the_read", "after_the_write"])
def test_a_hold_and_a_purge_at_the_same_time_never_leave_a_held_recording_purged(
    app_on: ApiHarness, db_url: str, mocker: Any, at: str
) -> None:
    """A supervisor's hold has read the recording (not purged yet), or already written its
    hold but not committed it, when the purge takes the row, marks it purged and deletes its
    files. Either the hold wins (the purge keeps the recording) or the purge does (the hold is
    refused 409); the hold was stored over the purged row (200, `legal_hold` on a recording
    whose audio was gone), on PostgreSQL and SQLite."""
    import calls.evidence as evidence

    h = app_on
    rec_id = _recorded_call(h, NOW - timedelta(days=100))
    root = h.app.state.service.settings.recordings_dir  # type: ignore[attr-defined]
    purge = threading.Thread(
        target=evidence.purge_expired, args=(h.session_factory, root, 30), kwargs={"now": NOW}
    )

    def waiting_on_a_lock() -> bool:
        if db_url.startswith("sqlite"):
            return False  # the purge waits on the database's write lock: the deadline decides
        with session_scope(h.session_factory) as s:  # type: ignore[arg-type]
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            return bool(s.scalar(text(query)))

    def purge_meanwhile() -> None:
        purge.start()
        deadline = time.monotonic() + 3
        while purge.is_alive() and not waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)

    if at == "after_the_read":  # set_hold has read the row, not yet written it
        real_utcnow = evidence.utcnow

        def hook_now() -> datetime:
            purge_meanwhile()
            return real_utcnow()

        mocker.patch.object(evidence, "utcnow", side_effect=hook_now)
    else:  # set_hold has written the hold; its audit entry comes, then the commit
        real_record = evidence.audit.record

        def hook_record(*args: Any, **kwargs: Any) -> Any:
            if args[2] == "recording.hold":
                purge_meanwhile()
            return real_record(*args, **kwargs)

        mocker.patch.object(evidence.audit, "record", side_effect=hook_record)
    resp = h.client.post(  # type: ignore[attr-defined]
        f"/api/v1/recordings/{rec_id}/hold",
        json={"reason": "案件 2026-119"},
        headers=h.auth("supervisor"),
    )
    purge.join(40)
    mocker.stopall()
    assert not purge.is_alive()
    meta = _get(h, f"/api/v1/recordings/{rec_id}")
    outcome = (meta["state"], meta["legal_hold"])  # type: ignore[index]
    assert outcome in (("finalised", True), ("purged", False)), (resp.status_code, meta)
    assert resp.status_code == (200 if outcome[1] else 409), resp.text


def test_a_purge_whose_files_cannot_even_be_listed_is_audited_and_goes_on(
    app_on: ApiHarness, mocker: Any
) -> None:
    """The deletion fails and the directory cannot be listed either (an I/O error): the failure
    is still audited, the row put back, and the next recording purged. The listing's error
    escaped: the row stayed `purged` with its files there, and the run stopped."""
    import calls.evidence as evidence

    h = app_on
    first = _recorded_call(h, NOW - timedelta(days=101))
    second = _recorded_call(h, NOW - timedelta(days=100))
    real = evidence.shutil.rmtree

    def refuse_once(path: Any, *args: Any, **kwargs: Any) -> None:
        mocker.patch.object(evidence.shutil, "rmtree", side_effect=real)
        mocker.patch.object(evidence.Path, "iterdir", side_effect=OSError(5, "Input/output error"))
        raise OSError(5, "Input/output error")

    mocker.patch.object(evidence.shutil, "rmtree", side_effect=refuse_once)
    svc = h.app.state.service  # type: ignore[attr-defined]
    result = evidence.purge_expired(svc.session_factory, svc.settings.recordings_dir, 30, now=NOW)
    mocker.stopall()
    assert [r for r, _ in result.failed] == [first] and result.purged == [second]
    meta = _get(h, f"/api/v1/recordings/{first}")
    assert meta["state"] == "finalised"  # type: ignore[index]
    log = _full_audit(h, first)
    assert [a for a, _ in log][:2] == ["recording.purge", "recording.purge_failed"]
    assert _get(h, f"/api/v1/recordings/{second}")["state"] == "purged"  # type: ignore[index]
