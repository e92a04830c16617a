"""The room record of multicast DNS discovery (``consensus/discovery.py``): pure mapping tests.

Discovery across machines is tested on the namespace bed (``tests/test_hosts.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus import discovery

ports = st.integers(1, 65535)
ips = st.ip_addresses(v=4).map(str)


@given(st.sampled_from(["tcp", "tls+tcp"]), ips, ports, st.booleans(), st.booleans())
def test_a_record_gives_back_the_room_it_describes(
    scheme: str, ip: str, port: int, secret: bool, tls: bool
) -> None:
    address = f"{scheme}://{ip}:{port}"
    _, host, got_port, txt = discovery.properties(address, secret=secret, tls=tls)
    ad = discovery.parse("team-a", got_port, [host], {k.encode(): v.encode() for k, v in txt.items()})
    assert ad is not None and ad.address == address and ad.secret == secret
    assert ad.tls == (tls or scheme == "tls+tcp")


def test_the_record_says_a_secret_is_needed_never_what_it_is() -> None:
    _, _, _, txt = discovery.properties("tcp://10.0.0.5:7000", secret=True, tls=False)
    assert txt == {"v": "1", "scheme": "tcp", "secret": "yes", "tls": "no"}


@pytest.mark.parametrize("address", ["ipc:///tmp/room", "inproc://room", "tcp://10.0.0.5", "ws://h:1/x"])
def test_only_tcp_addresses_can_be_advertised(address: str) -> None:
    with pytest.raises(ValueError, match="only a tcp or tls\\+tcp room address"):
        discovery.properties(address, secret=False, tls=False)


@pytest.mark.parametrize("name", ["", "a.b", "x" * 64])
def test_a_name_is_one_dns_label(name: str) -> None:
    with pytest.raises(ValueError, match="advertised name"):
        discovery.check_name(name)


@pytest.mark.parametrize(
    "txt", [{}, {b"v": b"2", b"scheme": b"tcp"}, {b"v": b"1", b"scheme": b"udp"}, {b"v": None}]
)
def test_a_record_of_another_kind_is_passed_over(txt: dict[bytes, bytes | None]) -> None:
    assert discovery.parse("x", 7000, ["10.0.0.5"], txt) is None


@pytest.mark.parametrize("addresses", [[], ["not an address"], ["::1"], ["300.1.1.1"]])
def test_a_record_without_an_ipv4_address_is_passed_over(addresses: list[str]) -> None:
    assert discovery.parse("x", 7000, addresses, {b"v": b"1"}) is None


def test_loopback_comes_last_among_addresses() -> None:
    ad = discovery.parse("x", 7000, ["127.0.0.1", "10.0.0.5"], {b"v": b"1"})
    assert ad is not None and ad.address == "tcp://10.0.0.5:7000"
    assert ad.addresses == ("tcp://10.0.0.5:7000", "tcp://127.0.0.1:7000")


async def test_joining_a_plain_address_looks_nothing_up() -> None:
    assert await discovery.joinable("tcp://10.0.0.5:7000", 1.0) == "tcp://10.0.0.5:7000"
