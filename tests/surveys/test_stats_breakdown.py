"""The satisfaction trend by month (county zone), the breakdowns by incident type and
dispatcher, rework counts, and the XLSX / CSV export of one breakdown equal to the JSON."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl

from tests.surveys.seed_months import PERIOD, seed_months


def _params(**extra: str) -> dict[str, str]:
    return {"from": PERIOD[0].isoformat(), "to": PERIOD[1].isoformat(), **extra}


def test_months_types_dispatchers_and_rework(api: Any) -> None:
    seed_months(api.session_factory)
    r = api.client.get("/api/v1/surveys/stats", params=_params(), headers=api.auth("supervisor"))
    assert r.status_code == 200, r.text
    body = r.json()
    months = {t["month"]: t for t in body["by_month"]}
    assert list(months) == ["2026-08", "2026-09", "2026-10", "2026-11"]
    assert months["2026-08"]["finished"] == 0 and months["2026-08"]["satisfaction_pct"] is None
    assert (months["2026-09"]["effective"], months["2026-09"]["satisfaction_pct"]) == (4, "75.0")
    assert months["2026-09"]["rework"] == 1 and months["2026-09"]["unsatisfied_pct"] == "25.0"
    assert (months["2026-10"]["effective"], months["2026-10"]["satisfaction_pct"]) == (2, "50.0")
    assert months["2026-10"]["no_answer"] == 1
    assert (months["2026-11"]["effective"], months["2026-11"]["satisfaction_pct"]) == (2, "100.0")
    types = {t["type"]: t for t in body["by_type"]}
    assert types["utility"]["satisfaction_pct"] == "75.0"
    assert (types["traffic"]["effective"], types["traffic"]["satisfaction_pct"]) == (4, "75.0")
    people = {t["dispatcher"]: t for t in body["by_dispatcher"]}
    assert (people["张调度"]["effective"], people["张调度"]["satisfaction_pct"]) == (6, "83.3")
    assert people["李调度"]["finished"] == 3
    assert body["total"]["rework"] == 1 and body["total"]["satisfaction_pct"] == "75.0"


def test_xlsx_and_csv_exports_hold_the_jsons_figures(api: Any) -> None:
    seed_months(api.session_factory)
    sup = api.auth("supervisor")
    body = api.client.get("/api/v1/surveys/stats", params=_params(), headers=sup).json()
    for group, key, tallies in (("month", "month", body["by_month"]),
                                ("unit", "unit_code", body["by_unit"]),
                                ("type", "type", body["by_type"]),
                                ("dispatcher", "dispatcher", body["by_dispatcher"])):  # fmt: skip
        r = api.client.get(
            "/api/v1/surveys/stats", params=_params(format="xlsx", group=group), headers=sup
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        head = rows[0]
        assert rows[1][0] == "合计 total" and rows[1][head.index("有效回访 effective")] == 8
        by_key = {row[0]: dict(zip(head, row, strict=True)) for row in rows[2:]}
        assert len(by_key) == len(tallies)
        for t in tallies:
            got = by_key[t[key]]
            assert got["有效回访 effective"] == t["effective"]
            assert got["已完成 finished"] == t["finished"]
            assert got["satisfied"] == t["answers"]["satisfied"]
            assert got["返工 rework"] == t["rework"]
            assert (got["满意率% satisfaction_pct"] or None) == t["satisfaction_pct"]
    r = api.client.get("/api/v1/surveys/stats", params=_params(format="csv", group="type"),
                       headers=sup)  # fmt: skip
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row[0] for row in rows] == ["警情类型 type", "合计 total", "traffic", "utility"]
    legacy = api.client.get("/api/v1/surveys/stats", params=_params(format="csv"), headers=sup)
    assert legacy.content.decode("utf-8-sig").startswith("group,unit_code,category")
    bad = api.client.get("/api/v1/surveys/stats", params=_params(group="x"), headers=sup)
    assert bad.status_code == 422
    assert api.client.get("/api/v1/surveys/stats", params=_params(format="xlsx"),
                          headers=api.auth("dispatcher")).status_code == 403  # fmt: skip
