"""Registration safety: which webhook URLs the provider refuses, and why."""

from __future__ import annotations

import asyncio

import pytest

from servers.webhooks.ssrf import URLRefusedError, check_url, check_url_async


def fake_resolver(table):
    def resolve(host, port):
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://10.0.0.5/hook", "private"),
        ("http://192.168.1.20:8080/hook", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::1]:8000/hook", "loopback"),
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[fd00::1]/", "private"),
        ("http://100.64.0.1/", "not globally routable"),  # carrier-grade NAT
    ],
)
def test_non_public_addresses_are_refused(url, words):
    with pytest.raises(URLRefusedError) as info:
        check_url(url)
    assert words in str(info.value)


def test_a_name_resolving_to_loopback_is_refused():
    # Real DNS: localhost resolves to 127.0.0.1 (and maybe ::1).
    with pytest.raises(URLRefusedError, match="loopback"):
        check_url("http://localhost:9999/hook")


def test_every_address_is_checked():
    resolver = fake_resolver({"mixed.example": ["93.184.216.34", "10.1.2.3"]})
    with pytest.raises(URLRefusedError, match="10.1.2.3"):
        check_url("https://mixed.example/hook", resolver=resolver)


def test_public_addresses_pass_and_are_kept_for_delivery():
    resolver = fake_resolver({"hooks.example": ["93.184.216.34", "2606:2800:220:1::"]})
    checked = check_url("https://hooks.example/in?x=1", resolver=resolver)
    assert checked.addresses == ("93.184.216.34", "2606:2800:220:1::")
    assert (checked.port, checked.target, checked.host) == (443, "/in?x=1", "hooks.example")
    assert check_url("http://8.8.8.8:8080/").port == 8080


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://93.184.216.34/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://93.184.216.34/", "scheme"),
        ("93.184.216.34/hook", "scheme"),
        ("", "empty"),
        ("http:///nohost", "no host"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("http://93.184.216.34:99999/", "port"),
    ],
)
def test_malformed_or_non_http_urls_are_refused(url, words):
    with pytest.raises(URLRefusedError) as info:
        check_url(url)
    assert words in str(info.value)


def test_unresolvable_name_is_refused():
    with pytest.raises(URLRefusedError, match="does not resolve"):
        check_url("http://nowhere.invalid/", resolver=fake_resolver({}))


def test_loopback_only_with_the_explicit_setting():
    assert check_url("http://127.0.0.1:8000/hook", allow_loopback=True).addresses == ("127.0.0.1",)
    assert check_url("http://[::1]:8000/hook", allow_loopback=True)
    assert check_url("http://localhost:8000/hook", allow_loopback=True)
    # the setting allows loopback, nothing else
    with pytest.raises(URLRefusedError, match="private"):
        check_url("http://10.0.0.5/", allow_loopback=True)
    with pytest.raises(URLRefusedError, match="link-local"):
        check_url("http://169.254.169.254/", allow_loopback=True)


def test_async_check_at_delivery_time():
    with pytest.raises(URLRefusedError, match="loopback"):
        asyncio.run(check_url_async("http://localhost:1/"))
    assert asyncio.run(check_url_async("http://127.0.0.1:1/", allow_loopback=True)).port == 1
