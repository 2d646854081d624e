"""Phone number parsing, normalisation and the dial policy."""

from __future__ import annotations

import pytest

from registry.numbers import (
    DialPolicy,
    DialRefused,
    InvalidNumber,
    NumberKind,
    check_dial_policy,
    parse_number,
)

EXT = r"^[1-9][0-9]{2,5}$"


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("13812345678", "+8613812345678", NumberKind.MOBILE),
        ("+86 138 1234 5678", "+8613812345678", NumberKind.MOBILE),
        ("0086 138-1234-5678", "+8613812345678", NumberKind.MOBILE),
        ("0833-4212345", "+868334212345", NumberKind.FIXED_LINE),
        ("(0833) 421 2345", "+868334212345", NumberKind.FIXED_LINE),
        ("+86 833 421 2345", "+868334212345", NumberKind.FIXED_LINE),
        ("028-12345678", "+862812345678", NumberKind.FIXED_LINE),
    ],
)
def test_domestic_numbers_normalise_to_e164(raw: str, e164: str, kind: NumberKind) -> None:
    number = parse_number(raw, "CN", extensions_pattern=EXT)
    assert number.e164 == e164
    assert number.kind is kind
    assert number.extension is None
    assert number.canonical == e164
    check_dial_policy(number)  # allowed


@pytest.mark.parametrize(
    "raw",
    ["0833-4212345-8001", "0833-4212345转8001", "0833 4212345 ext 8001", "+868334212345;ext=8001"],
)
def test_landline_with_extension(raw: str) -> None:
    number = parse_number(raw, "CN")
    assert (number.e164, number.extension) == ("+868334212345", "8001")
    assert number.canonical == "+868334212345;ext=8001"
    assert parse_number(number.canonical, "CN") == number  # the stored form reads back
    assert "8001" in number.display


def test_internal_extension_matches_the_configured_pattern() -> None:
    number = parse_number("8001", "CN", extensions_pattern=EXT)
    assert number.kind is NumberKind.EXTENSION
    assert number.e164 is None
    assert number.canonical == "8001"
    check_dial_policy(number)
    with pytest.raises(InvalidNumber):
        parse_number("8001", "CN", extensions_pattern=r"^2[0-9]{3}$")


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("", "empty"),
        ("hello", "does not look like"),
        ("0833-12345", "not a number that exists"),
        ("16012345678", "not a number that exists"),
        ("138123456789999", "too long"),
        ("13812345678<br>", "characters"),
        ("12", "too short"),
    ],
)
def test_garbage_and_impossible_numbers_are_refused_with_a_reason(
    raw: str, reason_part: str
) -> None:
    with pytest.raises(InvalidNumber) as err:
        parse_number(raw, "CN", extensions_pattern=EXT, field="staff[0].phone")
    assert reason_part in err.value.reason
    assert err.value.field == "staff[0].phone"


@pytest.mark.parametrize("raw", ["+1 650 253 0000", "+44 20 7946 0958", "00852 2123 4567"])
def test_foreign_numbers_parse_but_the_dial_policy_refuses_them(raw: str) -> None:
    number = parse_number(raw, "CN")
    assert number.e164 is not None and not number.e164.startswith("+86")
    with pytest.raises(DialRefused, match="international"):
        check_dial_policy(number)
    check_dial_policy(number, DialPolicy(allow_international=True))


@pytest.mark.parametrize("raw", ["110", "120", "12345", "95598"])
def test_special_service_numbers_are_refused_even_though_they_look_like_extensions(
    raw: str,
) -> None:
    number = parse_number(raw, "CN", extensions_pattern=EXT)
    assert number.kind is NumberKind.SHORT
    with pytest.raises(DialRefused):
        check_dial_policy(number)
    with pytest.raises(DialRefused) as err:
        DialPolicy(extensions_pattern=EXT).check(raw, field="leader.phone")
    assert err.value.field == "leader.phone"


def test_400_service_lines_are_domestic_and_allowed() -> None:
    number = DialPolicy().check("400-812-3456")
    assert number.e164 == "+864008123456"
