"""Named networks for the relay, each with where its numbers come from.

Every figure below is either cited (the source is named next to it) or
marked *illustrative*: a plausible round number chosen to make the
behaviour visible, not a measurement of any operator's network.

Slow timers are compressed for the notebook (``Preset.demo()``): a 30 s NAT
timeout becomes 1 s, a flap every 30 s becomes one a second, so a cell runs
in seconds. Latency, jitter and bandwidth are not compressed. Heartbeat
intervals are compressed by the same factor (``demo_seconds``), so every
ratio the lessons depend on (heartbeat interval / idle timeout) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .relay import Weather

DEMO_FACTOR = 30.0  # real seconds per demo second, for idle timeouts, flaps, heartbeats


@dataclass(frozen=True)
class Preset:
    name: str
    weather: Weather  # the real-world dials
    source: str  # where the numbers come from

    def demo(self, factor: float = DEMO_FACTOR) -> Weather:
        """The same network with its slow timers divided by ``factor``."""
        w = self.weather
        return replace(
            w,
            idle_timeout_s=w.idle_timeout_s / factor if w.idle_timeout_s else None,
            flap_every_s=w.flap_every_s / factor if w.flap_every_s else None,
        )


def demo_seconds(real_s: float, factor: float = DEMO_FACTOR) -> float:
    """A real interval (a heartbeat, a long-poll hold) in the demo's compressed time."""
    return real_s / factor


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "good Wi-Fi",
            Weather(latency_ms=5, jitter_ms=5),
            "illustrative: a few ms each way on a quiet home network",
        ),
        Preset(
            "busy 4G",
            Weather(latency_ms=80, jitter_ms=40, bandwidth_kbps=2000),
            "illustrative: tens of ms each way, jittery, a few Mbit/s shared; "
            "not a 3GPP or operator figure",
        ),
        Preset(
            "train tunnel",
            Weather(latency_ms=40, jitter_ms=60, flap_every_s=30),
            "illustrative: the link is lost every 30 s and every connection is reset",
        ),
        Preset(
            "corporate proxy",
            Weather(latency_ms=10, buffer_bytes=256 * 1024),
            "behaviour measured: jupyter-server-proxy 4.6 holds a whole response "
            "unless Accept is exactly text/event-stream (notebook 03); nginx buffers "
            "proxied responses unless told not to (X-Accel-Buffering: no); the "
            "256 KiB buffer is illustrative",
        ),
        Preset(
            "carrier NAT 30 s",
            Weather(latency_ms=30, jitter_ms=10, idle_timeout_s=30),
            "RFC 5382 REQ-5: a NAT's established-TCP idle timeout MUST NOT be "
            "less than 2 h 4 min; carrier NATs that forget idle connections much "
            "sooner violate it; 30 s is illustrative",
        ),
    )
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {list(PRESETS)}") from None
