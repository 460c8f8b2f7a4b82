"""The SSRF guard (DESIGN §8): a webhook goes only to a public https address, checked when the endpoint is saved
and again at every attempt (a name may resolve elsewhere by then), and the connection goes to the address that was
checked, so a second resolution cannot point it inwards. Redirects are never followed.

Loopback (and plain http to it) is allowed only by FIELDBOOK_WEBHOOK_ALLOW_LOOPBACK, a setting for tests that
production refuses.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Ranges `is_global` does not refuse on every Python version: local-use NAT64, the deprecated IPv4-compatible and
# site-local forms, SIIT; 6to4 and Teredo carry an IPv4 address that is checked itself.
_REFUSED = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "::/96", "fec0::/10", "::ffff:0:0:0/96", "100::/64")
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The target is not one Fieldbook may call; the message says why, for the admin."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect (the checked address in the URL), and the names TLS and HTTP must still see."""

    url: str
    host_header: str
    server_name: str


def _embedded(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo), which is where the packets really go."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(address.packed[-4:])
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def check_address(address: IPAddress, *, allow_loopback: bool) -> None:
    inner = _embedded(address)
    if allow_loopback and inner.is_loopback:
        return
    # is_global is false for private, loopback, link-local (169.254.169.254, the cloud metadata address, is one),
    # shared (100.64/10), reserved, documentation and unspecified ranges.
    if not inner.is_global or inner.is_multicast or any(address in network for network in _REFUSED):
        raise Refused(f"{address} is not a public address")


def check_url(url: str, *, allow_loopback: bool) -> httpx.URL:
    """The URL as httpx will send it (the host in ASCII, IDNA applied), or Refused: https (http only to loopback
    when tests allow it), no user info, a host, a valid port."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise Refused(f"it is not a valid URL ({exc})") from exc
    if not parsed.raw_host:
        raise Refused("it has no host")
    if parsed.userinfo:
        raise Refused("it must not carry a user name or password")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and allow_loopback):
        raise Refused("it must use https")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise Refused("it is not a valid URL (bad port)")
    return parsed


async def resolve(url: str, *, allow_loopback: bool) -> Target:
    """Check a URL and every address its host resolves to; the connection goes to one of those (IPv4 first)."""
    parsed = check_url(url, allow_loopback=allow_loopback)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Refused(f"{host} does not resolve") from exc
        # Every answer must be public: a name with one public and one private address could be made to use either.
        addresses = sorted({ipaddress.ip_address(info[4][0]) for info in infos}, key=lambda a: (a.version, a))
    for address in addresses:
        check_address(address, allow_loopback=allow_loopback)
    chosen = addresses[0]
    default_port = port == (443 if parsed.scheme == "https" else 80)
    return Target(
        url=str(parsed.copy_with(host=str(chosen), port=port, fragment=None)),
        host_header=host if default_port else f"{host}:{port}",
        server_name=host,
    )
