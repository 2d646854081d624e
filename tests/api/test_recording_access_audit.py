"""Every access to a recording is audited, also the ones that are refused: a track the
recording does not have, a range the track cannot serve, a file missing from the disk (evidence
lost, found the moment someone asks for it), a package that cannot be built. A refusal is its
own action (`recording.audio.refused`, `recording.package.refused`) with the status and why, so
it is never read as a download."""

from __future__ import annotations

from typing import Any

from storage.engine import session_scope
from storage.models.call_records import Call
from tests.recordings.seed_call import seed_recorded_call


def _seed(api: Any) -> tuple[str, Any]:
    settings = api.client.app.state.service.settings
    call_id, rec_id = seed_recorded_call(api.session_factory, settings.recordings_dir)
    with session_scope(api.session_factory) as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.node = settings.node  # made here: a missing file is not fetched from another node
    return rec_id, settings


def _log(api: Any, rec_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    sup = api.auth("supervisor")
    entries = api.client.get(
        "/api/v1/audit", params={"resource_id": rec_id, "action": "recording."}, headers=sup
    ).json()
    return [(e["action"], e["actor"], e["detail"]) for e in reversed(entries)]


def test_refused_audio_requests_are_audited_as_refusals(api: Any) -> None:
    rec_id, settings = _seed(api)
    c, disp = api.client, api.auth("dispatcher")
    url = f"/api/v1/recordings/{rec_id}/audio"
    size = len(c.get(url, headers=disp).content)

    assert c.get(url, params={"track": "unit2"}, headers=disp).status_code == 404
    assert c.get(url, headers={**disp, "Range": f"bytes={size}-"}).status_code == 416
    assert c.get(url, headers={**disp, "Range": "bytes=9-2"}).status_code == 400
    meta = c.get(f"/api/v1/recordings/{rec_id}", headers=api.auth("supervisor")).json()
    (settings.recordings_dir / meta["tracks"]["unit"]["file"]).unlink()  # the evidence is gone
    missing = c.get(url, params={"track": "unit"}, headers=disp)
    assert missing.status_code == 404 and missing.json()["title"] == "Recording file missing"

    refused = [(a, who, d) for a, who, d in _log(api, rec_id) if a == "recording.audio.refused"]
    assert [(who, d["track"], d["range"], d["status"], d["refused"]) for _, who, d in refused] == [
        ("dispatcher", "unit2", None, 404, "No such track"),
        ("dispatcher", "mixed", f"bytes={size}-", 416, "Range not satisfiable"),
        ("dispatcher", "mixed", "bytes=9-2", 400, "Malformed Range header"),
        ("dispatcher", "unit", None, 404, "Recording file missing"),
    ]
    assert "unit.wav" in refused[-1][2]["reason"]
    served = [d for a, _, d in _log(api, rec_id) if a == "recording.audio"]
    assert served == [{"track": "mixed", "range": None}]  # a refusal is not a download


def test_a_package_that_cannot_be_built_is_audited_as_refused_not_as_a_download(
    api: Any,
) -> None:
    rec_id, settings = _seed(api)
    c, sup = api.client, api.auth("supervisor")
    meta = c.get(f"/api/v1/recordings/{rec_id}", headers=sup).json()
    (settings.recordings_dir / meta["tracks"]["caller"]["file"]).unlink()
    r = c.get(f"/api/v1/recordings/{rec_id}/package", headers=sup)
    assert r.status_code == 404, r.text
    assert "caller" in r.json()["detail"]
    actions = [(a, d.get("status"), d.get("refused")) for a, _, d in _log(api, rec_id)]
    assert actions == [
        ("recording.metadata", None, None),
        ("recording.package.refused", 404, "Recording file missing"),
    ]
