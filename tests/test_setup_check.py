"""The setup check reports problems with a fix, and passes here."""

from __future__ import annotations

from lab import setup_check


def test_this_environment_passes():
    checks = setup_check.run_checks()
    assert [c.name for c in checks if c.status == "FAIL"] == []
    assert "Ready" in setup_check.report(checks)


def test_a_missing_package_fails_with_the_install_command():
    check = setup_check.check_package("no-such-dist-xyz", "no_such_mod", "1.0", "a test")
    assert check.status == "FAIL" and "requirements.txt" in check.fix


def test_an_old_version_fails_with_the_upgrade_command():
    check = setup_check.check_package("tornado", "tornado", "999.0", "the servers")
    assert check.status == "FAIL" and "--upgrade" in check.fix and "999.0" in check.detail


def test_report_names_each_fix():
    bad = setup_check.Check("x", "FAIL", "broken", "do this")
    text = setup_check.report([bad])
    assert "fix: do this" in text and "1 problem(s)" in text


def test_a_proxy_that_would_catch_loopback_traffic_is_reported(monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    check = setup_check.check_loopback_not_proxied()
    assert check.status == "FAIL" and "NO_PROXY" in check.fix
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert setup_check.check_loopback_not_proxied().status == "ok"
