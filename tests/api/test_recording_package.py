"""The recordings list and the evidence package: a zip of the tracks, SHA256SUMS that
`sha256sum -c` accepts, a manifest and the recording's access audit (this download included);
a track changed after sealing is refused, not packaged."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from tests.recordings.seed_call import seed_recorded_call


def test_the_package_verifies_with_sha256sum_and_holds_the_access_audit(
    api: Any, tmp_path: Path
) -> None:
    settings = api.client.app.state.service.settings
    call_id, rec_id = seed_recorded_call(api.session_factory, settings.recordings_dir)
    sup = api.auth("supervisor")
    listed = api.client.get("/api/v1/recordings", headers=sup).json()
    assert [(r["id"], r["call_id"], r["state"]) for r in listed] == [(rec_id, call_id, "finalised")]
    assert listed[0]["tracks"] == ["caller", "dispatcher", "mixed", "unit"]
    assert api.client.get("/api/v1/recordings", headers=api.auth("dispatcher")).status_code == 403
    api.client.get(f"/api/v1/recordings/{rec_id}/audio", headers=api.auth("dispatcher"))

    r = api.client.get(f"/api/v1/recordings/{rec_id}/package", headers=sup)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = sorted(z.namelist())
        z.extractall(tmp_path)
    assert names == sorted(
        f"{rec_id}/{n}" for n in ("SHA256SUMS", "manifest.json", "access-audit.json",
                                   "tracks/mixed.wav", "tracks/caller.wav",
                                   "tracks/dispatcher.wav", "tracks/unit.wav")
    )  # fmt: skip
    root = tmp_path / rec_id
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=root, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 6
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["call"]["id"] == call_id and manifest["recording"]["id"] == rec_id
    assert manifest["generated_by"] == {"name": "supervisor", "role": "supervisor"}
    rec = api.client.get(f"/api/v1/recordings/{rec_id}", headers=sup).json()
    for f in manifest["files"]:
        assert f["sha256"] == rec["tracks"][f["role"]]["sha256"]  # as sealed
    accesses = json.loads((root / "access-audit.json").read_text())
    assert [(a["actor"], a["action"]) for a in accesses] == [
        ("dispatcher", "recording.audio"), ("supervisor", "recording.package")
    ]  # fmt: skip
    log = api.client.get("/api/v1/audit", params={"action": "recording.package"}, headers=sup)
    assert [e["resource_id"] for e in log.json()] == [rec_id]
    for role in ("dispatcher", "unit"):
        denied = api.client.get(f"/api/v1/recordings/{rec_id}/package", headers=api.auth(role))
        assert denied.status_code == 403

    # a tampered track is refused with a clear problem, never packaged
    mixed = settings.recordings_dir / rec["tracks"]["mixed"]["file"]
    os.chmod(mixed, stat.S_IRUSR | stat.S_IWUSR)
    with mixed.open("r+b") as f:
        f.seek(2000)
        f.write(b"\x00\x01" * 50)
    bad = api.client.get(f"/api/v1/recordings/{rec_id}/package", headers=sup)
    assert bad.status_code == 409 and bad.json()["title"] == "Recording damaged"
    assert "mixed" in bad.json()["detail"]
    assert not list(settings.data_dir.glob("package-*.zip"))  # no temporary file left behind
    refused = api.client.get(
        "/api/v1/audit", params={"action": "recording.package.refused"}, headers=sup
    ).json()
    assert [(e["resource_id"], e["detail"]["status"], e["detail"]["refused"]) for e in refused] == [
        (rec_id, 409, "Recording damaged")
    ]  # the attempt's `recording.package` entry was committed before the hashes were checked
    assert "mixed" in refused[0]["detail"]["reason"]
