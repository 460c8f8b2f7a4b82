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
from urllib.parse import urlsplit, urlunsplit

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
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
    """The IPv4 address an IPv6 one carries (mapped, or NAT64), which is where the packets really go."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(address.packed[-4:])
    return address


def check_address(address: IPAddress, *, allow_loopback: bool) -> None:
    address = _embedded(address)
    if allow_loopback and address.is_loopback:
        return
    # is_global is false for private, loopback, link-local (169.254.169.254, the cloud metadata address, is one),
    # shared (100.64/10), reserved, documentation and unspecified ranges.
    if not address.is_global or address.is_multicast:
        raise Refused(f"{address} is not a public address")


def check_url(url: str, *, allow_loopback: bool) -> tuple[str, int]:
    """The host and port of a webhook URL, or Refused: https (http only to loopback when tests allow it), no user
    info, a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("it is not a valid URL") from exc
    host = parts.hostname
    if not host:
        raise Refused("it has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("it must not carry a user name or password")
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_loopback):
        raise Refused("it must use https")
    return host, port or (443 if parts.scheme == "https" else 80)


async def resolve(url: str, *, allow_loopback: bool) -> Target:
    """Check a URL and every address its host resolves to; the first one is where to connect."""
    host, port = check_url(url, allow_loopback=allow_loopback)
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
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        check_address(address, allow_loopback=allow_loopback)
    parts = urlsplit(url)
    chosen = addresses[0]
    netloc = f"[{chosen}]:{port}" if chosen.version == 6 else f"{chosen}:{port}"
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=parts.netloc.rpartition("@")[2],
        server_name=host,
    )
