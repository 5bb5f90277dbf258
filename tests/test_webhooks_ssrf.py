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
    assert_refused(url, words)


def assert_refused(url: str, words: str) -> None:
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
    assert_refused(url, words)


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


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://[2002:7f00:1::]/", "6to4 address that embeds 127.0.0.1"),
        ("http://[2002:a9fe:a9fe::]/", "link-local"),  # 169.254.169.254, cloud metadata
        ("http://[2002:a00:5::1]/", "private"),  # 10.0.0.5
        ("http://[2002:c0a8:101::]/", "private"),  # 192.168.1.1
    ],
)
def test_6to4_forms_are_judged_by_the_ipv4_inside(url, words):
    # Python counts 2002::/16 as global: is_global alone lets these through.
    for allow_loopback in (False, True):  # 2002:7f00:1:: is not this host's loopback
        with pytest.raises(URLRefusedError, match=words):
            check_url(url, allow_loopback=allow_loopback)


def test_teredo_is_judged_by_the_ipv4_inside():
    # Teredo server 127.0.0.1, client 10.0.0.5 (stored inverted, as the RFC says)
    teredo = "2001:0:7f00:1:0:0:f5ff:fffa"
    with pytest.raises(URLRefusedError, match="Teredo"):
        check_url(f"http://[{teredo}]/")


def test_a_public_6to4_address_still_passes():
    assert check_url("http://[2002:5db8:d822::1]/").port == 80  # 93.184.216.34 inside


def test_port_0_is_refused_not_turned_into_80():
    with pytest.raises(URLRefusedError, match="port 0"):
        check_url("http://93.184.216.34:0/hook")


@pytest.mark.parametrize(
    "url, target, stored",
    [
        ("http://93.184.216.34/a b", "/a%20b", "http://93.184.216.34/a%20b"),
        (
            "http://93.184.216.34/заказ?city=Київ",
            "/%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7?city=%D0%9A%D0%B8%D1%97%D0%B2",
            None,
        ),
        ("http://93.184.216.34:8080/ok%20already?a=1&b=2", "/ok%20already?a=1&b=2", None),
        ("http://93.184.216.34/x\x01y#frag", "/x%01y", "http://93.184.216.34/x%01y"),
    ],
)
def test_path_and_query_are_percent_encoded_at_registration(url, target, stored):
    checked = check_url(url)
    assert checked.target == target and checked.target.isascii()
    assert " " not in checked.url and checked.url.isascii()
    if stored:
        assert checked.url == stored


def test_a_non_ascii_host_is_idna_encoded():
    resolver = fake_resolver({"xn--mnchen-3ya.example": ["93.184.216.34"]})
    checked = check_url("https://München.example/hook", resolver=resolver)
    assert checked.host == "xn--mnchen-3ya.example"
    assert checked.url == "https://xn--mnchen-3ya.example/hook"
