"""``LabSession``: Kamailio plus a few baresip phones, started and stopped together.

Used by ``scripts/lab.py`` (run the lab by hand) and reusable by ``linkcall demo``::

    with LabSession(Path("lab-run"), phones=[("2001", 400.0), ("2002", 1000.0)]) as lab:
        print(lab.describe())
        lab.phones["2001"].dial("2002")
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.baresip import BaresipPhone
from lab.kamailio import InviteAuth, Kamailio

HOST = "127.0.0.1"


def default_users() -> dict[str, str]:
    """1000-1009 for our own UA / service, 2001-2009 for phones: password ``pw<user>``."""
    users = {str(u): f"pw{u}" for u in range(1000, 1010)}
    users.update({str(u): f"pw{u}" for u in range(2001, 2010)})
    return users


class LabSession:
    """Start Kamailio and phones; stop everything (by PID) on exit, even after errors."""

    def __init__(
        self,
        workdir: Path,
        phones: Sequence[tuple[str, float | None]] = (("2001", 400.0), ("2002", 1000.0)),
        users: Mapping[str, str] | None = None,
        invite_auth: InviteAuth = "407",
        udp_port: int | None = None,
        trunk_prefix: str | None = None,
        trunk_target: tuple[str, int] | None = None,
        auto_answer: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.users = dict(users) if users is not None else default_users()
        self.kamailio = Kamailio(
            self.workdir / "kamailio",
            self.users,
            udp_port=udp_port,
            invite_auth=invite_auth,
            trunk_prefix=trunk_prefix,
            trunk_target=trunk_target,
        )
        self.phones: dict[str, BaresipPhone] = {}
        self._phone_specs = list(phones)
        self.auto_answer = auto_answer

    def start(self) -> None:
        try:
            self.kamailio.start()
            for user, tone in self._phone_specs:
                self.add_phone(user, tone_hz=tone, auto_answer=self.auto_answer)
            for p in self.phones.values():
                p.wait_registered()
        except BaseException:
            self.stop()
            raise

    def add_phone(
        self, user: str, tone_hz: float | None = None, auto_answer: bool = True, **kwargs: object
    ) -> BaresipPhone:
        if user not in self.users:
            raise KeyError(f"{user} is not a lab user")
        phone = BaresipPhone(
            self.workdir,
            user,
            self.users[user],
            HOST,
            self.kamailio.udp_port,
            tone_hz=tone_hz,
            auto_answer=auto_answer,
            **kwargs,  # type: ignore[arg-type]
        )
        self.phones[user] = phone
        phone.start()
        return phone

    def stop(self) -> None:
        for p in self.phones.values():
            with contextlib.suppress(Exception):
                p.stop()
        self.kamailio.stop()

    def describe(self) -> str:
        k = self.kamailio
        lines = [
            f"Kamailio  sip:{HOST}:{k.udp_port} (UDP+TCP), domain/realm {k.domain}, "
            f"INVITE auth {k.invite_auth}, log {k.log_path}",
            "Accounts (user / password): " + ", ".join(f"{u}/{pw}" for u, pw in self.users.items()),
        ]
        for u, p in self.phones.items():
            tone = f"{p.tone_hz:g} Hz" if p.tone_hz else "silence"
            lines.append(
                f"Phone {u}: {p.aor}  mic {tone}  sip {HOST}:{p.sip_port}  "
                f"ctrl_tcp {HOST}:{p.ctrl_port}  rtp {p.rtp}  recordings {p.rec_dir}"
            )
        return "\n".join(lines)

    def __enter__(self) -> LabSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
