"""Processes outside the kernel.

Server processes (``cluster``), a throwaway ``redis-server`` (``redis_server``), load
generators (``loadgen``), and the ``reaper`` that ends them if the kernel dies.
"""
