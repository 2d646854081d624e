"""Demo data: the county's 45 linkage units and 30 townships, with this week's rosters.

Names are realistic, numbers are fake but valid-looking (mobile 1xx and Leshan landlines
0833-4xxxxxx). Deterministic for a given week, idempotent: units are upserted and a roster
is added only to units that have not reported for the week yet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from registry.duty import week_of
from registry.numbers import DialPolicy
from storage import registry as repo
from storage.models.registry import UnitKind
from storage.registry import RosterValues, Shift, StaffEntry, UnitInfo

LINKAGE_UNITS = (
    "县12345政府服务热线", "县供电公司", "县自来水公司", "县燃气公司", "县住建局",
    "县交通运输局", "县市场监管局", "县卫健局", "县应急管理局", "县自然资源局",
    "县生态环境局", "县水务局", "县农业农村局", "县教育局", "县民政局",
    "县人社局", "县综合行政执法局", "县消防救援大队", "县人民医院", "县中医医院",
    "县疾控中心", "县林业局", "县文广旅局", "县商务局", "县发改局",
    "县财政局", "县司法局", "县信访局", "县退役军人事务局", "县医保局",
    "县住房公积金中心", "县气象局", "县电信公司", "县移动公司", "县联通公司",
    "县邮政公司", "县广电网络公司", "县公路养护段", "县交通运输执法大队", "县总工会",
    "县妇联", "县残联", "县税务局", "县经信局", "县城投公司",
)  # fmt: skip
TOWNSHIPS = (
    "玉津镇", "孝姑镇", "石溪镇", "清溪镇", "罗城镇", "定文镇", "敖家镇", "铁山镇",
    "寿保镇", "芭沟镇", "九井镇", "龙孔镇", "新民镇", "舞雩镇", "南阳镇", "马庙镇",
    "同兴镇", "纪家镇", "下渡镇", "泉水镇", "金石井镇", "双溪镇", "大兴镇", "榨鼓乡",
    "伏龙乡", "岷东乡", "塘坝乡", "新盛乡", "后河乡", "桅杆乡",
)  # fmt: skip
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何罗高林"
_GIVEN = ("伟", "芳", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超")
_MOBILE_PREFIXES = ("138", "139", "135", "136", "137", "150", "151", "158", "159", "186", "188")
_DAY = Shift(days=(1, 2, 3, 4, 5), start=time(8, 30), end=time(17, 30))
_NIGHT = Shift(days=(), start=time(17, 30), end=time(8, 30))


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What seed_demo did."""

    week: str
    units_created: int
    units_total: int
    rosters_added: int


_POLICY = DialPolicy()


def demo_units() -> list[UnitInfo]:
    """The 75 demo units: L01-L45 linkage units, T01-T30 townships."""
    units = [
        UnitInfo(f"L{i:02d}", name, UnitKind.LINKAGE, f"+8683342{10000 + i:05d}", True)
        for i, name in enumerate(LINKAGE_UNITS, start=1)
    ]
    units += [
        UnitInfo(f"T{i:02d}", name, UnitKind.TOWNSHIP, f"+8683343{10000 + i:05d}", True)
        for i, name in enumerate(TOWNSHIPS, start=1)
    ]
    return units


def _person(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(("", *_GIVEN))


def _mobile(rng: random.Random) -> str:
    return _POLICY.check(rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}").canonical


def demo_roster(unit: UnitInfo, week: str) -> RosterValues:
    """A plausible roster: a leader, a day-shift officer, a night-shift officer, an office line."""
    rng = random.Random(f"{unit.code}/{week}")
    office = _POLICY.check(f"0833-4{rng.randrange(10**6):06d}").canonical
    staff = (
        StaffEntry(_person(rng), _mobile(rng), 1, _DAY),
        StaffEntry(_person(rng), _mobile(rng), 2, _NIGHT),
        StaffEntry("值班室", office, 3, None),
    )
    title = "值班领导" if unit.kind is UnitKind.LINKAGE else "带班镇领导"
    return RosterValues(_person(rng), _mobile(rng), staff, f"{title}24小时保持通讯畅通")


def seed_demo(session: Session, now: datetime, *, zone: ZoneInfo | None = None) -> SeedSummary:
    """Upsert the demo units and give every unit a roster for the week `now` falls in."""
    zone = zone or ZoneInfo("Asia/Shanghai")
    week = week_of(now, zone)
    created = added = 0
    units = demo_units()
    for unit in units:
        created += repo.upsert_unit(session, unit)
        if repo.latest_roster(session, unit.code, week) is None:
            repo.add_roster_version(
                session, unit.code, week, demo_roster(unit, week), submitted_by="demo", at=now
            )
            added += 1
    return SeedSummary(week, created, len(units), added)
