"""Phone numbers are personal data: this is the one place that decides how they appear in logs."""

from __future__ import annotations


def mask_number(number: str | None) -> str:
    """Mask a phone number or SIP user part for logs: keep a short prefix and the last 2 digits.

    >>> mask_number("+8613812345678")
    '+861********78'
    >>> mask_number("2001")
    '2**1'
    """
    if not number:
        return "-"
    n = len(number)
    if n <= 4:
        return number[0] + "*" * max(0, n - 2) + (number[-1] if n > 1 else "")
    keep_head = 4 if number.startswith("+") else 3
    keep_head = min(keep_head, n - 2)
    return number[:keep_head] + "*" * (n - keep_head - 2) + number[-2:]
