def heartbeat_plan(idle_timeout_s):
    """Heartbeat interval and watchdog for a NAT that forgets idle connections."""
    interval_s = idle_timeout_s / 3  # three per idle timeout: one late beat is harmless
    watchdog_s = 2.5 * interval_s  # silent for 2.5 intervals: presumed dead
    return interval_s, watchdog_s
