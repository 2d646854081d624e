"""RTP media engine: one event loop, one 20 ms ticker, N-1 mixing, DTMF on every path.

Public surface::

    engine = MediaEngine(host, port_range); await engine.start()
    ep = await engine.open_endpoint("caller"); ep.configure(negotiated_media)
    conf = engine.create_conference(); conf.add(ep, "caller"); conf.add_tap(recorder)
"""

from telephony.media.conference import Conference, FrameTap, OrderedFrameTap
from telephony.media.digits import DigitStream
from telephony.media.endpoint import EndpointState, RtpEndpoint
from telephony.media.engine import MediaEngine
from telephony.media.errors import (
    EndpointClosed,
    MediaError,
    PacketError,
    PortRangeExhausted,
    PromptError,
)
from telephony.media.playback import PlaybackHandle, PlaybackOutcome, Prompt, PromptCache
from telephony.media.stats import LegStats, RtcpFeedback

__all__ = [
    "Conference",
    "DigitStream",
    "EndpointClosed",
    "EndpointState",
    "FrameTap",
    "LegStats",
    "MediaEngine",
    "MediaError",
    "OrderedFrameTap",
    "PacketError",
    "PlaybackHandle",
    "PlaybackOutcome",
    "PortRangeExhausted",
    "Prompt",
    "PromptCache",
    "PromptError",
    "RtcpFeedback",
    "RtpEndpoint",
]
