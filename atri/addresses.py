"""Who a visitor is on the network, for quotas and the password gate: the client's address behind the
host's proxies, and the group of addresses one visitor can use. No Streamlit here.

Streamlit's `st.context.ip_address` is None when the peer is loopback (127.0.0.1 or ::1; see
streamlit/runtime/context.py), which is exactly where a proxy on the same machine, like the shipped nginx,
connects from. So a None peer is a loopback peer, and loopback is always trusted as a proxy: only
something running on this host can connect from it.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
LOOPBACK_PEER = "127.0.0.1"  # what a None peer from Streamlit stands for
IPV6_VISITOR_PREFIX = 64  # one home or phone gets a whole /64: its addresses are one visitor


def parse_address(text: str) -> IPAddress | None:
    """An IP address, IPv4 inside IPv6 (::ffff:a.b.c.d) unwrapped; None for anything else."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trusted_networks(trusted_proxies: str) -> tuple[IPNetwork, ...]:
    """ATRI_TRUSTED_PROXIES (addresses or networks separated by commas; nonsense is skipped), and loopback."""
    networks: list[IPNetwork] = list(LOOPBACK)
    for item in trusted_proxies.split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def _hops(forwarded_for: Iterable[str]) -> list[str]:
    """Every X-Forwarded-For header line, in order, split into hops (a proxy may add a line of its own)."""
    return [hop.strip() for line in forwarded_for for hop in line.split(",") if hop.strip()]


def _peer_is_trusted(peer: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    address = parse_address(peer if peer is not None else LOOPBACK_PEER)
    return address is not None and _is_trusted(address, networks)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted_proxies: str) -> str | None:
    """The visitor's IP address. `peer` is the connection's own (None: loopback, as Streamlit says it).
    When the peer is a trusted proxy, the address is the right-most hop of X-Forwarded-For that no trusted
    proxy wrote (hops further left are whatever the client sent); when every hop is trusted, the left-most.
    A header from any other peer is ignored. None when the peer is loopback and says nothing more: a browser
    on this machine talking to Streamlit directly, with no address worth counting."""
    networks = trusted_networks(trusted_proxies)
    own = parse_address(peer) if peer is not None else None
    hops = _hops(forwarded_for)
    if not _peer_is_trusted(peer, networks) or not hops:
        return str(own) if own is not None else peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:  # a trusted proxy wrote nonsense: count the request as the peer's own
            return str(own) if own is not None else LOOPBACK_PEER
        if not _is_trusted(address, networks):
            return str(address)
    first = parse_address(hops[0])
    return str(first) if first is not None else None


def quota_address(address: str | None) -> str | None:
    """What a visitor's address counts as: an IPv4 address itself, an IPv6 address its /64 network."""
    if address is None:
        return None
    parsed = parse_address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_VISITOR_PREFIX}", strict=False))
    return str(parsed)


def served_over_https(page_url: str | None, peer: str | None, forwarded_proto: Iterable[str],
                      trusted_proxies: str) -> bool:
    """Whether the browser reached the page over HTTPS: its own URL says so, or a trusted proxy's
    X-Forwarded-Proto does (another peer's header means nothing)."""
    if page_url and page_url.lower().startswith("https://"):
        return True
    if not _peer_is_trusted(peer, trusted_networks(trusted_proxies)):
        return False
    protos = [proto.strip().lower() for line in forwarded_proto for proto in line.split(",") if proto.strip()]
    return bool(protos) and protos[0] == "https"  # the first hop: the proxy the browser spoke to
