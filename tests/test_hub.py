"""The hub's hand-off: every subscriber sees every event once, in seq order,
whichever thread publishes it, including a handler publishing on the loop
(fanned out at once) while other threads' events are still waiting."""

from __future__ import annotations

import threading
import time

from tornado.web import Application

from servers.runtime import ServerThread


def recording_subscriber(server: ServerThread, name: str, seen: dict) -> None:
    def subscribe() -> None:
        seen[name] = []
        server.hub.subscribe_callback(lambda event: seen[name].append(event.seq))

    server.call(subscribe)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_on_loop_publish_fans_out_at_once_and_keeps_order_with_other_threads():
    with ServerThread(lambda hub: Application([])) as server:
        seen: dict[str, list[int]] = {}
        for name in ("a", "b"):
            recording_subscriber(server, name, seen)

        def on_loop() -> list[int]:
            # As a WebSocket handler does: publish on the loop thread. The
            # subscriber has it before publish() returns, no loop turn later.
            # (It may bring along later events other threads published
            # meanwhile: they are fanned out in the same pass, in order.)
            event = server.hub.publish("from-loop")
            return event.seq in seen["a"][-50:]

        stop = threading.Event()

        def from_thread() -> None:
            for _ in range(2000):
                if stop.is_set():
                    return
                server.publish("from-thread")
                time.sleep(0.0002)

        workers = [threading.Thread(target=from_thread) for _ in range(2)]
        for t in workers:
            t.start()
        try:
            for _ in range(200):
                assert server.call(on_loop)
        finally:
            stop.set()
            for t in workers:
                t.join()
        last = server.hub.log.last_seq
        assert wait_for(lambda: len(seen["a"]) == last and len(seen["b"]) == last)
        assert seen["a"] == seen["b"] == list(range(1, last + 1))


def test_a_publish_made_during_a_fan_out_waits_for_it_to_finish():
    with ServerThread(lambda hub: Application([])) as server:
        order: list[tuple[str, int]] = []

        def subscribe() -> None:
            def first_offer(event) -> None:
                order.append(("first", event.seq))
                if event.type == "question":
                    server.hub.publish("answer")  # re-entrant: must not overtake

            server.hub.subscribe_callback(first_offer)
            server.hub.subscribe_callback(lambda event: order.append(("second", event.seq)))

        server.call(subscribe)
        server.call(lambda: server.hub.publish("question"))
        assert wait_for(lambda: len(order) == 4)
        # Whichever subscriber the set yields first, each sees 1 before 2.
        for who in ("first", "second"):
            assert [seq for name, seq in order if name == who] == [1, 2]
        assert {seq for _, seq in order[:2]} == {1}


def test_a_failing_subscriber_does_not_cost_the_others_the_event(caplog):
    with ServerThread(lambda hub: Application([])) as server:
        got: list[int] = []

        def subscribe() -> None:
            def explode(event) -> None:
                raise RuntimeError("broken subscriber")

            server.hub.subscribe_callback(explode)
            server.hub.subscribe_callback(lambda event: got.append(event.seq))

        server.call(subscribe)
        for _ in range(3):
            server.publish("t")
        assert wait_for(lambda: got == [1, 2, 3])
        assert "broken subscriber" in caplog.text


def test_a_callback_subscriber_has_no_queue_and_unsubscribes_on_close():
    with ServerThread(lambda hub: Application([])) as server:
        got: list[int] = []

        def subscribe():
            return server.hub.subscribe_callback(lambda event: got.append(event.seq))

        sub = server.call(subscribe)
        assert not hasattr(sub, "queue")  # no asyncio.Queue per idle connection
        server.publish("t")
        assert wait_for(lambda: got == [1])
        server.call(sub.close)
        assert server.call(lambda: server.hub.subscriber_count) == 0
        later: list[int] = []
        server.call(lambda: server.hub.subscribe_callback(lambda event: later.append(event.seq)))
        server.publish("t")
        assert wait_for(lambda: later == [2])  # fanned out: the closed one was skipped
        assert got == [1]
