"""Per-leg statistics, as plain values."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.media.rtcp import ReportBlock


@dataclass(frozen=True, slots=True)
class RtcpFeedback:
    """What the peer last reported about our stream (RTCP SR/RR report block)."""

    fraction_lost: float
    packets_lost: int
    jitter_ms: float
    at: float

    @classmethod
    def from_block(cls, block: ReportBlock, at: float) -> RtcpFeedback:
        return cls(block.loss_ratio, block.packets_lost, block.jitter / 8.0, at)


@dataclass(slots=True)
class LegStats:
    """Counters of one leg. `packets_lost` follows RFC 3550 A.3 over every source the leg saw;
    `concealed` counts frames played from concealment; `late` packets arrived after their turn."""

    packets_received: int = 0
    packets_lost: int = 0
    jitter_ms: float = 0.0
    late: int = 0
    concealed: int = 0
    played: int = 0
    jitter_dropped: int = 0
    packets_sent: int = 0
    send_errors: int = 0
    rejected_source: int = 0
    malformed: int = 0
    unknown_payload: int = 0
    ssrc_changes: int = 0
    dtmf_received: int = 0
    dtmf_duplicates: int = 0
    remote: RtcpFeedback | None = None

    @property
    def loss_ratio(self) -> float:
        expected = self.packets_received + self.packets_lost
        return self.packets_lost / expected if expected else 0.0
