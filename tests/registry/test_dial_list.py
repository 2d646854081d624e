"""The dial list: staff on duty by order (shifts in the county zone), leader, fallback."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.registry.conftest import roster_body

ROSTER = roster_body(
    leader={"name": "王局长", "phone": "13900000001"},
    staff=[
        {"name": "全周", "phone": "13800000002", "order": 2},
        {
            "name": "白班",
            "phone": "13800000001",
            "order": 1,
            "shift": {"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"},
        },
        {
            "name": "周五夜班",
            "phone": "13800000003",
            "order": 3,
            "shift": {"days": [5], "start": "18:00", "end": "08:00"},
        },
        {"name": "领导兼值班", "phone": "139-0000-0001", "order": 4},
    ],
)


def _dial(api: Any, at: str) -> dict[str, Any]:
    r = api.client.get(
        f"/api/v1/units/U01/dial-list?at={quote(at)}", headers=api.auth("dispatcher")
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _who(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["role"], e["name"]) for e in body["entries"]]


def test_order_respects_shifts_and_dedupes_numbers(reg: Any) -> None:
    r = reg.client.put("/api/v1/units/U01/rosters/2026-W49", json=ROSTER, headers=reg.auth("unit"))
    assert r.status_code == 201, r.text

    wednesday_10 = _dial(reg, "2026-12-02T10:00:00+08:00")
    assert wednesday_10["week"] == "2026-W49" and wednesday_10["roster_version"] == 1
    # The leader's number is already in the list as staff order 4: it is dialled once.
    assert _who(wednesday_10) == [
        ("staff", "白班"),
        ("staff", "全周"),
        ("staff", "领导兼值班"),
        ("fallback", "值班总机 / unit switchboard"),
    ]
    assert [e["position"] for e in wednesday_10["entries"]] == [1, 2, 3, 4]
    assert wednesday_10["entries"][0]["number"] == "+8613800000001"
    assert wednesday_10["entries"][-1]["number"] == "+868334210001"
    assert wednesday_10["entries"][-1]["display"] == "0833 421 0001"

    # Saturday 03:00 in Shanghai is Friday 19:00 UTC: the Friday night shift is on.
    saturday_3 = _dial(reg, "2026-12-04T19:00:00Z")
    assert [n for _, n in _who(saturday_3)][:3] == ["全周", "周五夜班", "领导兼值班"]
    assert "白班" not in [n for _, n in _who(saturday_3)]


def test_leader_comes_after_staff_when_numbers_differ(reg: Any) -> None:
    body = roster_body()  # leader 13900000001, staff 13812345678 then 0833-4212345
    reg.client.put("/api/v1/units/U02/rosters/2026-W49", json=body, headers=reg.auth("admin"))
    r = reg.client.get(
        "/api/v1/units/U02/dial-list?at=2026-12-01T09:00:00%2B08:00", headers=reg.auth("dispatcher")
    )
    assert [(e["role"], e["number"]) for e in r.json()["entries"]] == [
        ("staff", "+8613812345678"),
        ("staff", "+868334212345"),
        ("leader", "+8613900000001"),
        ("fallback", "+868334210002"),
    ]


def test_without_a_roster_only_the_fallback_is_dialled(reg: Any) -> None:
    body = _dial(reg, "2026-12-09T10:00:00+08:00")
    assert body["roster_version"] is None
    assert [(e["role"], e["number"]) for e in body["entries"]] == [("fallback", "+868334210001")]
    r = reg.client.get("/api/v1/units/NOPE/dial-list", headers=reg.auth("dispatcher"))
    assert r.status_code == 404
    assert (
        reg.client.get("/api/v1/units/U01/dial-list", headers=reg.auth("unit")).status_code == 403
    )


def test_a_switchboard_extension_is_carried_to_the_dialler(reg: Any) -> None:
    """`0833-4201234转8001`: dialled as +868334201234, the extension keyed in afterwards."""
    from registry.duty import unit_dial_list
    from registry.numbers import DialPolicy

    body = roster_body(
        leader={"name": "王局长", "phone": "13900000001"},
        staff=[{"name": "总机转分机", "phone": "0833-4201234转8001", "order": 1}],
    )
    r = reg.client.put("/api/v1/units/U01/rosters/2026-W49", json=body, headers=reg.auth("unit"))
    assert r.status_code == 201, r.text
    entry = _dial(reg, "2026-12-02T10:00:00+08:00")["entries"][0]
    assert entry["number"] == "+868334201234;ext=8001" and entry["extension"] == "8001"
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from storage.engine import session_scope

    zone = ZoneInfo("Asia/Shanghai")
    with session_scope(reg.session_factory) as s:
        dial = unit_dial_list(s, "U01", datetime(2026, 12, 2, 10, tzinfo=zone), zone, DialPolicy())
    first, leader = dial.targets[0], dial.targets[1]
    assert (first.dial, first.extension) == ("+868334201234", "8001")
    assert (leader.dial, leader.extension) == ("+8613900000001", None)


def test_a_shift_time_with_an_offset_is_refused_not_shifted(reg: Any) -> None:
    """Shifts are the county's wall clock: "09:00Z" (17:00 in the county) used to be stored as
    09:00. It is a 422 naming the field now, and the stored roster is unchanged."""
    r = reg.client.put("/api/v1/units/U01/rosters/2026-W49", json=ROSTER, headers=reg.auth("unit"))
    assert r.status_code == 201, r.text
    for start in ("09:00:00Z", "08:00:00+08:00"):
        staff = [dict(s) for s in ROSTER["staff"]]
        staff[1] = {**staff[1], "shift": {"days": [1], "start": start, "end": "18:00"}}
        bad = reg.client.put(
            "/api/v1/units/U01/rosters/2026-W49",
            json={**ROSTER, "staff": staff},
            headers=reg.auth("unit"),
        )
        assert bad.status_code == 422, (start, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in bad.json()["errors"]]
        assert any(f.endswith("shift.start") for f in fields), fields
        assert "without an offset" in bad.text
    wednesday_10 = _dial(reg, "2026-12-02T10:00:00+08:00")
    assert wednesday_10["roster_version"] == 1  # nothing stored
    assert _who(wednesday_10)[0] == ("staff", "白班")
