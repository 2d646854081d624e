"""Read the RTP payloads of a classic libpcap capture (Ethernet/IPv4/UDP), for fixtures."""

from __future__ import annotations

import struct
from pathlib import Path


def udp_payloads(path: Path) -> list[tuple[float, bytes]]:
    """(capture time in seconds, UDP payload) of every IPv4/UDP frame in the file."""
    data = path.read_bytes()
    magic = data[:4]
    endian = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
    link_type = struct.unpack_from(endian + "I", data, 20)[0]
    link_len = {1: 14, 113: 16}[link_type]  # Ethernet, Linux cooked
    pos = 24
    out: list[tuple[float, bytes]] = []
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp_len = struct.unpack_from("!H", ip, ihl + 4)[0]
        out.append((sec + usec / 1e6, bytes(ip[ihl + 8 : ihl + udp_len])))
    return out
