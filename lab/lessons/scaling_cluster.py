"""Notebook 04's scale-out steps as one-line calls: Redis (or the fallback
when it is not installed) and the two server processes behind the front.

Without ``redis-server`` the notebook still runs top to bottom: one
in-memory process holds every client, and the cells say what they cannot
show (a second process to fail over to)."""

from __future__ import annotations

from typing import Any

from lab.scale import cluster, redis_server


def start_redis() -> Any:
    """A throwaway ``redis-server`` on a free loopback port, or ``None`` (said why)."""
    if redis_server.available():
        redis = redis_server.RedisServer().start()
        print("redis-server running at", redis.url)
        return redis
    print(
        "redis-server is not installed, so this notebook falls back to ONE in-memory process: "
        "the scale-out cells below then check that single process. To see the real thing, "
        + redis_server.INSTALL_HINT
    )
    return None


def start_pair(redis: Any) -> tuple[Any, Any, list[str]]:
    """Servers A and B sharing ``redis``, and the front's list of URLs; with
    no Redis, one in-memory process that is both A and B."""
    if redis is None:
        a = cluster.ServerProcess("A").start()
        return a, a, [a.url]
    a = cluster.ServerProcess("A", redis_url=redis.url).start()
    b = cluster.ServerProcess("B", redis_url=redis.url).start()
    return a, b, [a.url, b.url]
