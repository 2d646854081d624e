"""Satisfaction statistics over seeded data reproduce the article's figures."""

from __future__ import annotations

import csv
import io
from fractions import Fraction

from sqlalchemy.orm import Session, sessionmaker

from api.schemas.surveys import percent, summarise
from storage import surveys as repo
from storage.engine import session_scope
from storage.models.incidents import IncidentCategory
from tests.surveys.seed import PERIOD, SEED, seed

ANSWERS = ["satisfied", "basically_satisfied", "unsatisfied"]


def _stats(factory: sessionmaker[Session], **filters: object):  # type: ignore[no-untyped-def]
    with session_scope(factory) as s:
        cells = repo.finished_counts(
            s,
            finished_from=PERIOD[0],
            finished_to=PERIOD[1],
            **filters,  # type: ignore[arg-type]
        )
    return summarise(cells, ANSWERS)


def test_the_articles_figures_come_out_exactly(factory: sessionmaker[Session]) -> None:
    seed(factory)
    total = _stats(factory).total
    assert total.effective == 8520
    assert total.answers["satisfied"] == 7031 and total.answers["unsatisfied"] == 11
    assert total.satisfaction_pct == "82.5"
    assert total.unsatisfied_pct == "0.13"
    assert total.no_answer == 350 and total.cancelled == 3
    assert total.finished == 8520 + 350 + 3


def test_by_unit_and_category_add_up_and_filters_narrow(factory: sessionmaker[Session]) -> None:
    seed(factory)
    stats = _stats(factory)
    by_unit = {t.unit_code: t for t in stats.by_unit}
    for (unit, _category), outcomes in SEED.items():
        effective = sum(outcomes.get(a, 0) for a in ANSWERS)
        tally = by_unit[unit]
        assert tally.effective == effective
        assert tally.satisfaction_rate == float(Fraction(outcomes["satisfied"], effective))
        assert tally.satisfaction_pct == percent(outcomes["satisfied"], effective)
    assert sum(t.effective for t in stats.by_category) == 8520
    police = _stats(factory, category=IncidentCategory.POLICE).total
    assert police.effective == 1031 + 178 and police.unsatisfied_pct == "0.0"
    l01 = _stats(factory, unit_code="L01")
    assert [t.unit_code for t in l01.by_unit] == ["L01"]
    assert l01.total.answers == {"satisfied": 4000, "basically_satisfied": 900, "unsatisfied": 6}


def test_percent_rounds_half_up_with_two_decimals_below_one_percent() -> None:
    assert percent(7031, 8520) == "82.5"
    assert percent(11, 8520) == "0.13"
    assert percent(1, 8) == "12.5"
    assert percent(1, 200) == "0.50"
    assert percent(0, 5) == "0.0"
    assert percent(1, 0) is None


def test_stats_api_json_csv_and_roles(api) -> None:  # type: ignore[no-untyped-def]
    seed(api.session_factory)
    params = {"from": PERIOD[0].isoformat(), "to": PERIOD[1].isoformat()}
    assert api.client.get("/api/v1/surveys/stats", params=params,
                          headers=api.auth("dispatcher")).status_code == 403  # fmt: skip
    resp = api.client.get("/api/v1/surveys/stats", params=params, headers=api.auth("supervisor"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"]["effective"] == 8520
    assert (body["total"]["satisfaction_pct"], body["total"]["unsatisfied_pct"]) == ("82.5", "0.13")
    assert {t["unit_code"] for t in body["by_unit"]} == {None, "L01", "T01"}
    csv_resp = api.client.get(
        "/api/v1/surveys/stats", params={**params, "format": "csv"}, headers=api.auth("admin")
    )
    assert csv_resp.status_code == 200 and csv_resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_resp.text.lstrip("\ufeff"))))
    total = next(r for r in rows if r["group"] == "total")
    assert (total["effective"], total["satisfied"], total["unsatisfied"]) == ("8520", "7031", "11")
    assert (total["satisfaction_pct"], total["unsatisfied_pct"]) == ("82.5", "0.13")
    unit_rows = {r["unit_code"]: r for r in rows if r["group"] == "unit"}
    assert unit_rows["T01"]["no_answer"] == "100"
    narrowed = api.client.get(
        "/api/v1/surveys/stats", params={**params, "unit": "T01", "category": "non_police"},
        headers=api.auth("supervisor"),
    ).json()  # fmt: skip
    assert narrowed["total"]["effective"] == 2405
