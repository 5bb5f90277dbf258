def backoff_delays(attempts, base, factor, cap, jitter, rng):
    """Delay before each attempt: 0, then base * factor**i capped at cap, ±jitter."""
    delays = [0.0]
    for i in range(attempts - 1):
        delay = min(cap, base * factor**i)
        delays.append(delay * (1 + rng.uniform(-jitter, jitter)))
    return delays
