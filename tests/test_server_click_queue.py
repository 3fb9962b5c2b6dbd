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
        t = threading.Thread(target=click)
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
    queue.acquire()
    waiters = [threading.Thread(target=queue.acquire, args=(True,)) for _ in range(2)]
    for k, t in enumerate(waiters):
        t.start()
        _wait_until(lambda: queue.waiting == k + 1)
    with pytest.raises(ServerBusy, match="2 clicks waiting"):
        with queue.bounded():
            pass
    queue.release()  # the first waiter takes the model (and keeps it: it never leaves its context)
    _wait_until(lambda: queue.waiting == 1)
    done = threading.Event()
    threading.Thread(target=lambda: (queue.acquire(bounded=True), done.set())).start()  # room again
    _wait_until(lambda: queue.waiting == 2)
    queue.release()
    queue.release()
    assert done.wait(10)
