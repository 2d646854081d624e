"""THE lab smoke test (issue 2): two registered baresip phones call each other and each
one's recording holds the other's tone and not its own."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from lab.audio import tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Measured on the reference machine (80 Hz bands): the other party's 0.3-amplitude tone
# arrives at -13.5 dBFS, exactly its level at the source (-13.47 dBFS: PCMU passes it
# intact); one's own tone reads -67 to -74 dBFS, the G.711 quantisation noise in that band.
# The thresholds leave ~11 dB of margin on the loud side and demand at least 30 dB of
# separation; no echo of oneself may come anywhere near speech level.
OTHER_MIN_DB = -25.0
OWN_MAX_DB = -50.0
MIN_SEPARATION_DB = 30.0


def test_two_phones_hear_each_other_not_themselves(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone]
) -> None:
    a = phone_factory("2001", tone_hz=400)
    b = phone_factory("2002", tone_hz=1000)
    assert kamailio.registered("2001") and kamailio.registered("2002")

    since_b = b.event_count()
    since_a = a.dial("2002")
    a.wait_established(10, since_a)
    b.wait_established(10, since_b)
    time.sleep(3.0)
    a.hangup()
    a.wait_closed(10, since_a)
    b.wait_closed(10, since_b)

    for me, other in ((a, b), (b, a)):
        recs = me.received_recordings()
        assert len(recs) == 1, f"{me.user}: {recs}"
        assert me.tone_hz is not None and other.tone_hz is not None
        # skip the first half second (jitter buffer fill, call setup)
        levels = tone_report(recs[0], [me.tone_hz, other.tone_hz], start=0.5)
        own, heard = levels[me.tone_hz], levels[other.tone_hz]
        assert heard > OTHER_MIN_DB, f"{me.user} heard {other.user} at {heard:.1f} dB: {levels}"
        assert own < OWN_MAX_DB, f"{me.user} hears itself at {own:.1f} dB: {levels}"
        assert heard - own >= MIN_SEPARATION_DB, levels
