"""With SIP listening on 0.0.0.0, RTP must use the address the user agent advertises (its route
towards the PBX or trunk), not 127.0.0.1 (issue 13, finding 12): a real PBX could not send audio
to a loopback address."""

from __future__ import annotations

from pathlib import Path

from pytest_mock import MockerFixture

from api.sip_stack import Telephony
from lab import ports
from tests.conftest import service_settings


async def test_media_binds_the_advertised_address_when_sip_listens_on_every_address(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    # the route source towards the trunk: another loopback address stands in for the LAN one
    mocker.patch("telephony.sip.ua.route_source", return_value="127.0.0.3")
    settings = service_settings(
        tmp_path, sip_listen=f"0.0.0.0:{ports.sip_port()}", sip_trunk_peer="127.0.0.2:9"
    )
    tel = Telephony(settings)  # type: ignore[arg-type]
    await tel.start()
    try:
        assert tel.ua.local_host == "127.0.0.3"
        endpoint = await tel.media.open_endpoint("probe")
        try:
            assert tel.media.host == "127.0.0.3"
            assert endpoint.local_host == "127.0.0.3"  # the socket is bound there
        finally:
            await endpoint.close()
    finally:
        await tel.stop()
