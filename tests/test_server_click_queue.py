"""The queue of clicks for the model: arrival order, a bound, and a count of who waits."""

from __future__ import annotations

import threading
import time

import pytest

from clickmask.server.click_queue import ClickQueue, ServerBusy


def _wait_until(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def test_waiters_get_the_model_in_arrival_order():
    queue = ClickQueue(max_waiting=100)
    order: list[int] = []
    queue.acquire()  # a long click holds the model
    threads = []
    for k in range(20):
        def click(k=k):
            with queue:
                order.append(k)
        t = threading.Thread(target=click, daemon=True)
        t.start()
        threads.append(t)
        _wait_until(lambda: queue.waiting == k + 1)
    assert queue.busy and queue.waiting == 20
    queue.release()
    for t in threads:
        t.join(10)
    assert order == list(range(20)) and queue.waiting == 0 and not queue.busy


def test_a_full_queue_refuses_at_once_and_takes_clicks_again_when_it_drains():
    queue = ClickQueue(max_waiting=2)
    go = threading.Event()
    served: list[int] = []

    def click(k: int) -> None:
        with queue.bounded():
            served.append(k)
            go.wait(10)

    queue.acquire()  # a long click holds the model
    threads = [threading.Thread(target=click, args=(k,), daemon=True) for k in range(2)]
    for k, t in enumerate(threads):
        t.start()
        _wait_until(lambda: queue.waiting == k + 1)
    with pytest.raises(ServerBusy, match="2 clicks waiting"):
        with queue.bounded():
            pass
    queue.release()  # the first waiter takes the model and holds it: one waits, so there is room again
    _wait_until(lambda: served == [0])
    late = threading.Thread(target=click, args=(2,), daemon=True)
    late.start()
    _wait_until(lambda: queue.waiting == 2)
    go.set()
    for t in [*threads, late]:
        t.join(10)
    assert served == [0, 1, 2] and not queue.busy
