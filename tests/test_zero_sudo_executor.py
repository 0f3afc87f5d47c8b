"""addons/zero_sudo/tools/executor.py without Odoo: the bounded executor and its reservations."""

import threading

import pytest

from conftest import addon_tools

addon_tools("zero_sudo")  # before importing from its package, zero_sudo_tools
from zero_sudo_tools.exceptions import ExecutorFull  # noqa: E402
from zero_sudo_tools.executor import BoundedExecutor  # noqa: E402


def test_executor_bounds_running_and_queued_tasks_and_frees_slots():
    executor = BoundedExecutor(max_workers=1, max_queued=2, retry_after=9)
    gate = threading.Event()
    futures = [executor.submit(gate.wait, 30) for _ in range(3)]  # one running, two queued
    with pytest.raises(ExecutorFull) as caught:
        executor.submit(print)
    assert caught.value.retry_after == 9
    gate.set()
    assert all(future.result(timeout=30) for future in futures)
    executor.submit(int).result(timeout=30)  # slots came back
    executor.shutdown()


def test_an_unused_reservation_gives_its_slot_back():
    executor = BoundedExecutor(max_workers=1, max_queued=0, retry_after=1)
    slot = executor.reserve()
    with pytest.raises(ExecutorFull):
        executor.reserve()
    slot.release()
    executor.reserve().release()
    executor.shutdown()


def test_checking_for_room_takes_no_slot():
    executor = BoundedExecutor(max_workers=1, max_queued=1, retry_after=4)
    executor.check_room()
    assert executor.counts() == (0, 0)
    slots = [executor.reserve(), executor.reserve()]
    with pytest.raises(ExecutorFull) as caught:
        executor.check_room()
    assert caught.value.retry_after == 4
    slots[0].release()
    executor.check_room()
    slots[1].release()
    executor.shutdown()
