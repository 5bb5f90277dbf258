import ipaddress
from urllib.parse import urlsplit


def refuse_reason(url, addresses):
    """Why a provider must not POST to ``url`` resolved to ``addresses``, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r}: only http and https"
    if parts.username or parts.password:
        return "credentials in the URL"
    for text in addresses:  # every address: the client may connect to any of them
        ip = ipaddress.ip_address(text)
        if not ip.is_global or ip.is_multicast:  # Python counts multicast as global
            return f"{ip} is not a public unicast address"
    return None
