"""Fixtures for the registry tests: an app with three units (U01, U02 linkage; T01 township)."""

from __future__ import annotations

from typing import Any

import pytest

UNITS = [
    {"code": "U01", "name": "县供电公司", "kind": "linkage", "fallback_number": "0833-4210001"},
    {"code": "U02", "name": "县自来水公司", "kind": "linkage", "fallback_number": "0833-4210002"},
    {"code": "T01", "name": "玉津镇", "kind": "township", "fallback_number": "0833-4210003"},
]


def roster_body(**over: Any) -> dict[str, Any]:
    """A valid roster submission."""
    body: dict[str, Any] = {
        "leader": {"name": "王局长", "phone": "13900000001"},
        "staff": [
            {"name": "张三", "phone": "13812345678", "order": 1},
            {"name": "李四", "phone": "0833-4212345", "order": 2},
        ],
        "notes": "春节期间加强值守",
    }
    body.update(over)
    return body


@pytest.fixture
def reg(api: Any) -> Any:
    """The `api` harness with the three units created by the admin."""
    for unit in UNITS:
        r = api.client.post("/api/v1/units", json=unit, headers=api.auth("admin"))
        assert r.status_code == 201, r.text
    return api
