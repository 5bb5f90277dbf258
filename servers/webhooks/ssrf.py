"""Registration safety: refuse webhook URLs that point inside the provider.

A provider POSTs to URLs its users type in. Without checks, a user registers
``http://169.254.169.254/latest/meta-data/`` (a cloud metadata service) or
``http://10.0.0.5/admin`` and the provider's own network does the attack for
them: server-side request forgery (SSRF). The checks (OWASP SSRF cheat sheet,
webhooks case):

1. Only ``http`` and ``https``.
2. Resolve the host and check *every* address (A and AAAA): each must be
   ``ipaddress.ip_address(a).is_global`` (and not multicast, which Python
   counts as global). One private answer is enough to
   refuse, because the client may pick any of them.
3. Loopback (``127.0.0.0/8``, ``::1``, so also ``localhost``) only when the
   operator sets ``allow_loopback`` explicitly: the notebook does, because its
   receiver lives on 127.0.0.1.
4. Redirects are never followed (the delivery client treats a 3xx as a
   failed attempt), or a public URL could bounce the request inside.
5. Check again at every delivery and connect to the address that was
   checked, not to a fresh lookup: DNS answers can change in between
   ("DNS rebinding").
6. IPv6 addresses that carry an IPv4 address inside are judged by that
   address too: 6to4 (``2002:7f00:1::`` is 127.0.0.1) and Teredo. Python
   counts 2002::/16 as global, so ``is_global`` alone lets them through.
7. The URL is normalised at registration (stored as it will be sent): the
   path and query percent-encoded (a space or ``é`` would otherwise break
   the request line at every delivery), the host lower-cased and IDNA-
   encoded. Port 0 is refused (it would silently become 80).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class URLRefusedError(ValueError):
    """A webhook URL the provider will not deliver to, with the reason."""


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    target: str  # path + query, percent-encoded: what goes on the request line
    addresses: tuple[str, ...]  # every address the host resolved to, all checked


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def classify(ip: IPAddress) -> str:
    """Why an address is not public, in words (``"public"`` if it is)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return classify(ip.ipv4_mapped)  # ::ffff:127.0.0.1 is 127.0.0.1
    for attr, words in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local (cloud metadata lives at 169.254.169.254)"),
        ("is_unspecified", "unspecified"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private network"),
    ):
        if getattr(ip, attr):
            return words
    return "public" if ip.is_global else "not globally routable"


def embedded_ipv4(ip: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries inside, with the form's name:
    6to4 (2002::/16) and Teredo (2001::/32, server and client)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = []
    if ip.sixtofour is not None:
        found.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:
        found += [("Teredo", v4) for v4 in ip.teredo]
    return found


def _check_embedded(address: str, ip: IPAddress) -> None:
    for form, v4 in embedded_ipv4(ip):
        try:
            check_address(str(v4))  # no loopback exception: 2002:7f00:1:: is not this host
        except URLRefusedError as exc:
            raise URLRefusedError(f"{address} is a {form} address that embeds {exc}") from None


@functools.lru_cache(maxsize=4096)  # an address's category never changes
def check_address(address: str, allow_loopback: bool = False) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    _check_embedded(address, ip)
    # is_global alone is not enough: 224.0.0.1 (multicast) counts as global.
    if ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified):
        return
    if ip.is_loopback and allow_loopback:
        return
    kind = classify(ip)
    hint = " (set allow_loopback=True to allow it deliberately)" if ip.is_loopback else ""
    raise URLRefusedError(f"{address} is a {kind} address{hint}")


# Characters left as they are when percent-encoding a path or query: the
# RFC 3986 unreserved and sub-delims, ":" and "@", and "%" so that an already
# encoded URL is not encoded twice. Everything else (space, non-ASCII, control
# characters) becomes %XX of its UTF-8 bytes.
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"
_SAFE_QUERY = _SAFE_PATH + "?"


def _ascii_host(host: str) -> str:
    """The host as it goes into DNS and the Host header: IDNA for a non-ASCII name."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise URLRefusedError(f"host {host!r} is not a valid internationalised name") from None


def _port(parts, scheme: str) -> int:
    try:
        port = parts.port
    except ValueError:
        raise URLRefusedError("the port is not a number between 1 and 65535") from None
    if port is None:
        return 443 if scheme == "https" else 80
    if port == 0:  # urlsplit gives 0, and "0 or default" used to turn it into 80
        raise URLRefusedError("port 0 is not a port a receiver can listen on")
    return port


def _split(url: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url:
        raise URLRefusedError("the URL is empty")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLRefusedError(f"scheme {scheme or '(none)'!r} refused: only http and https")
    if parts.username or parts.password:
        raise URLRefusedError("credentials in the URL are refused: use the signing secret")
    host = parts.hostname
    if not host:
        raise URLRefusedError("the URL has no host")
    port = _port(parts, scheme)
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_QUERY)
    return scheme, _ascii_host(host), port, target


def normalise(url: str) -> str:
    """``url`` as the provider stores and sends it: scheme and host lower-case,
    host IDNA-encoded, path and query percent-encoded, fragment dropped (it
    is never sent). Raises ``URLRefusedError`` for a URL ``check_url`` refuses
    on its form alone."""
    scheme, host, port, target = _split(url)
    shown = f"[{host}]" if ":" in host else host
    explicit = urlsplit(url.strip()).port is not None
    return f"{scheme}://{shown}{f':{port}' if explicit else ''}{target}"


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def check_url(
    url: str, allow_loopback: bool = False, resolver: Resolver = system_resolver
) -> CheckedURL:
    """Check ``url`` now (blocking DNS lookup); raise ``URLRefusedError``."""
    checked = _check_literal(url, allow_loopback)  # an IP address: no lookup
    if checked is not None:
        return checked
    scheme, host, port, target = _split(url)
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise URLRefusedError(f"{host!r} does not resolve ({exc})") from None
    return _finish(url, scheme, host, port, target, addresses, allow_loopback)


@functools.lru_cache(maxsize=1024)
def _check_literal(url: str, allow_loopback: bool) -> CheckedURL | None:
    """The verdict for a URL whose host is an IP address never changes: cache it.
    None when the host is a name (that one is resolved at every check)."""
    scheme, host, port, target = _split(url)
    literal = _literal(host)
    if literal is None:
        return None
    return _finish(url, scheme, host, port, target, [literal], allow_loopback)


async def check_url_async(url: str, allow_loopback: bool = False) -> CheckedURL:
    """The same check at delivery time, without blocking the event loop."""
    checked = _check_literal(url, allow_loopback)  # raises URLRefusedError (not cached)
    if checked is not None:
        return checked
    scheme, host, port, target = _split(url)  # a name: resolve it now
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise URLRefusedError(f"{host!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    return _finish(url, scheme, host, port, target, addresses, allow_loopback)


def _finish(url, scheme, host, port, target, addresses, allow_loopback) -> CheckedURL:
    if not addresses:
        raise URLRefusedError(f"{host!r} resolved to no address")
    for address in addresses:
        try:
            check_address(address, allow_loopback)
        except URLRefusedError as exc:
            raise URLRefusedError(f"{host!r} refused: {exc}") from None
    return CheckedURL(normalise(url), scheme, host, port, target, tuple(addresses))
