"""Phone numbers: parse and normalise to E.164, and the dial policy.

Errors:

    NumberError
     ├── InvalidNumber   the text is not a phone number we can use (carries the field and reason)
     └── DialRefused     a valid number the dial policy does not allow (carries the reason)

`parse_number` says what a number *is*; `check_dial_policy` says whether linkcall may dial it.
The registry stores `PhoneNumber.canonical`: E.164 (`+8613812345678`), E.164 with an
RFC 3966 extension parameter (`+868334212345;ext=8001`), or an internal extension (`8001`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType, shortnumberinfo

__all__ = [
    "DialPolicy",
    "DialRefused",
    "InvalidNumber",
    "NumberError",
    "NumberKind",
    "NumberSearch",
    "PhoneNumber",
    "check_dial_policy",
    "number_search",
    "parse_number",
]


class NumberError(ValueError):
    """Base of the number errors; `reason` is a short English sentence for people."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class InvalidNumber(NumberError):
    """The text is not a usable phone number."""


class DialRefused(NumberError):
    """The number is valid but the dial policy forbids calling it."""


class NumberKind(enum.StrEnum):
    """What a parsed number is."""

    MOBILE = "mobile"
    FIXED_LINE = "fixed_line"
    TOLL_FREE = "toll_free"  # 800 numbers
    SHARED_COST = "shared_cost"  # 400 numbers (companies' national service lines)
    UAN = "uan"
    EXTENSION = "extension"  # internal PBX extension (settings.extensions_pattern)
    SHORT = "short"  # 110, 12345, 95598 ...: special service / emergency numbers
    PREMIUM_RATE = "premium_rate"
    OTHER = "other"  # valid, but a type the county never needs (pager, VoIP, shared cost)


_TYPE_KINDS = {
    PhoneNumberType.MOBILE: NumberKind.MOBILE,
    PhoneNumberType.FIXED_LINE: NumberKind.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberKind.FIXED_LINE,
    PhoneNumberType.TOLL_FREE: NumberKind.TOLL_FREE,
    PhoneNumberType.SHARED_COST: NumberKind.SHARED_COST,
    PhoneNumberType.UAN: NumberKind.UAN,
    PhoneNumberType.PREMIUM_RATE: NumberKind.PREMIUM_RATE,
}


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A parsed number. `e164` is None for internal extensions and short numbers."""

    e164: str | None
    kind: NumberKind
    extension: str | None
    display: str
    region: str | None = None

    @property
    def canonical(self) -> str:
        """What the registry stores and `parse_number` reads back unchanged."""
        if self.e164 is None:
            return self.extension or self.display
        return f"{self.e164};ext={self.extension}" if self.extension else self.e164

    @property
    def dial(self) -> str:
        """The digits to put in a request URI (extension digits are sent as DTMF later)."""
        return self.e164 if self.e164 is not None else (self.extension or self.display)

    @property
    def post_dial(self) -> str | None:
        """The extension to key in by DTMF once the public number answered (转8001), or None:
        an internal extension is dialled directly, its digits are `dial` itself."""
        return self.extension if self.e164 is not None else None


@dataclass(frozen=True, slots=True)
class DialPolicy:
    """What linkcall may dial: domestic public numbers and configured internal extensions.

    This is the one dial policy of the service: every number that will be dialled or stored as
    a duty phone goes through `check` (the API, roster import, fallbacks, the call manager).
    """

    home_region: str = "CN"
    extensions_pattern: str | None = None
    allowed_kinds: frozenset[NumberKind] = field(
        default_factory=lambda: frozenset(
            {
                NumberKind.MOBILE,
                NumberKind.FIXED_LINE,
                NumberKind.TOLL_FREE,
                NumberKind.SHARED_COST,
                NumberKind.UAN,
                NumberKind.EXTENSION,
            }
        )
    )
    allow_international: bool = False

    def parse(self, raw: str, *, field: str | None = None) -> PhoneNumber:
        """Parse with this county's region and extension pattern (no policy check)."""
        return parse_number(
            raw, self.home_region, extensions_pattern=self.extensions_pattern, field=field
        )

    def check(self, raw: str, *, field: str | None = None) -> PhoneNumber:
        """Parse and check against the policy: the number linkcall may dial, or NumberError
        (InvalidNumber or DialRefused) naming `field`."""
        number = self.parse(raw, field=field)
        try:
            check_dial_policy(number, self)
        except DialRefused as exc:
            raise DialRefused(exc.reason, field=field) from None
        return number


# "0833-1234567-8001", "0833-1234567 转 8001", "... ext 8001", "... x8001", "...#8001"
_EXT_SUFFIX = re.compile(
    r"^(?P<main>.*\d)\s*(?:-|转|分机|ext\.?|x|#|;ext=)\s*(?P<ext>\d{1,6})$", re.I
)
_ALLOWED_CHARS = re.compile(r"^[0-9+\-()\s.#;=a-zA-Z:转分机]+$")
_MAX_LEN = 40


def parse_number(
    raw: str,
    region: str = "CN",
    *,
    extensions_pattern: str | None = None,
    field: str | None = None,
) -> PhoneNumber:
    """Parse what a person typed into a PhoneNumber, or raise InvalidNumber with the reason.

    Accepts `13812345678`, `+86 138 1234 5678`, `0086...`, `0833-1234567`, an extension after a
    landline (`0833-1234567-8001`, `转8001`, `ext 8001`), the canonical forms this module
    produces, internal extensions matching `extensions_pattern` and short service numbers
    (kind SHORT, which the dial policy refuses).
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidNumber("the number is empty", field=field)
    if len(text) > _MAX_LEN or not _ALLOWED_CHARS.match(text):
        raise InvalidNumber("contains characters that are not part of a phone number", field=field)
    digits = re.sub(r"[\s\-()]", "", text)
    if digits.isdigit() and len(digits) <= 6:
        return _parse_short(digits, region, extensions_pattern, field)
    parsed = _parse_public(text, region)
    if parsed is None:
        match = _EXT_SUFFIX.match(text)
        if match:
            main = _parse_public(match["main"], region)
            if main is not None and main.extension is None:
                main.extension = match["ext"]
                parsed = main
    if parsed is None:
        raise InvalidNumber(_why_invalid(text, region), field=field)
    return _to_phone_number(parsed)


def _parse_public(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """A valid public number, or None (the caller explains why)."""
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return num if phonenumbers.is_valid_number(num) else None


def _why_invalid(text: str, region: str) -> str:
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "does not look like a phone number"
    reason = phonenumbers.is_possible_number_with_reason(num)
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        return "too short for a phone number"
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        return "too long for a phone number"
    if reason == phonenumbers.ValidationResult.INVALID_COUNTRY_CODE:
        return "unknown country code"
    return "not a number that exists (unassigned prefix or wrong length for its area code)"


def _parse_short(
    digits: str, region: str, extensions_pattern: str | None, field: str | None
) -> PhoneNumber:
    try:
        num = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber("does not look like a phone number", field=field) from exc
    if shortnumberinfo.is_valid_short_number_for_region(num, region):
        return PhoneNumber(e164=None, kind=NumberKind.SHORT, extension=None, display=digits)
    if extensions_pattern and re.fullmatch(extensions_pattern, digits):
        return PhoneNumber(e164=None, kind=NumberKind.EXTENSION, extension=digits, display=digits)
    raise InvalidNumber("too short for a phone number and not an internal extension", field=field)


def _to_phone_number(num: phonenumbers.PhoneNumber) -> PhoneNumber:
    ext = num.extension or None
    kind = _TYPE_KINDS.get(phonenumbers.number_type(num), NumberKind.OTHER)
    num_no_ext = phonenumbers.PhoneNumber(
        country_code=num.country_code, national_number=num.national_number
    )
    region = phonenumbers.region_code_for_number(num)
    fmt = PhoneNumberFormat.NATIONAL if region == "CN" else PhoneNumberFormat.INTERNATIONAL
    display = phonenumbers.format_number(num_no_ext, fmt)
    if ext:
        display = f"{display} 转 {ext}"
    return PhoneNumber(
        e164=phonenumbers.format_number(num_no_ext, PhoneNumberFormat.E164),
        kind=kind,
        extension=ext,
        display=display,
        region=region,
    )


def check_dial_policy(number: PhoneNumber, policy: DialPolicy | None = None) -> None:
    """Return if linkcall may dial `number`; raise DialRefused with the reason otherwise."""
    policy = policy or DialPolicy()
    if number.kind is NumberKind.SHORT:
        raise DialRefused("special service and emergency numbers are not dialled by linkcall")
    if number.kind is NumberKind.PREMIUM_RATE:
        raise DialRefused("premium-rate numbers are refused")
    if (
        number.kind is not NumberKind.EXTENSION
        and number.region != policy.home_region
        and not policy.allow_international
    ):
        raise DialRefused(f"international numbers are refused ({number.region or 'unknown'})")
    if number.kind not in policy.allowed_kinds:
        raise DialRefused(f"{number.kind.value} numbers are not on the allow-list")


@dataclass(frozen=True, slots=True)
class NumberSearch:
    """How to find a number among stored call numbers (E.164 or extension digits): equal to
    `value`, or (`suffix`) ending with those digits."""

    value: str
    suffix: bool


_DIGITS = re.compile(r"^[0-9]{3,15}$")


def number_search(raw: str, policy: DialPolicy) -> NumberSearch:
    """A full public number (`138 1234 5678`, `0833-4212345`, `+86…`) matches its E.164 exactly;
    3-15 bare digits that are not one (`5678`, an extension `2001`) match as the last digits.
    InvalidNumber otherwise."""
    text = re.sub(r"[\s\-().]", "", raw or "")
    try:
        number = policy.parse(text, field="number")
    except NumberError:
        number = None
    if number is not None and number.e164 is not None:
        return NumberSearch(number.e164, suffix=False)
    if _DIGITS.match(text):
        return NumberSearch(text, suffix=True)
    raise InvalidNumber("give a full number or its last 3 to 15 digits (e.g. 5678)", field="number")
