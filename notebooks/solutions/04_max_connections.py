# Exercise 1: how many connections can one server process hold?


def max_connections(ram_bytes, kib_per_connection, fd_limit, reserved_fds=64):
    """The smaller of the two ceilings: memory and file descriptors.

    Every connection costs ``kib_per_connection`` KiB of memory and one file
    descriptor; the process also needs ``reserved_fds`` descriptors for
    itself (listening sockets, logs, the Redis connection...). ``fd_limit`` is
    ``ulimit -n``, or ``None`` where there is none (Windows).
    """
    by_memory = int(ram_bytes // (kib_per_connection * 1024))
    if fd_limit is None:
        return max(0, by_memory)
    by_fds = fd_limit - reserved_fds
    return max(0, min(by_memory, by_fds))
