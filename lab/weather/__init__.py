"""Network weather: a relay on 127.0.0.1 that makes the link between a
client and a lab server slow, jittery, flaky, NAT-like or buffering."""
