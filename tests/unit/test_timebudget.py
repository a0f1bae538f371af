"""The per-call time budget: SIGALRM on the main thread, a killable worker process elsewhere."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from khabar.timebudget import BudgetExceeded, TimeBudget, WorkerError, alarm_available, call_with_alarm

_CATASTROPHIC = re.compile(r"^(a+)+$")


def _spin() -> None:
    while True:
        pass


def _swallowing() -> str:
    # Enrichment code that catches Exception must not be able to swallow the budget.
    try:
        _spin()
    except Exception:
        return "swallowed"
    return "unreachable"


def test_alarm_interrupts_a_python_loop_and_the_worker_goes_on() -> None:
    assert alarm_available()
    with pytest.raises(BudgetExceeded) as info:
        call_with_alarm(0.2, _spin)
    assert "time budget exceeded" in str(info.value)
    assert call_with_alarm(5.0, sum, [1, 2, 3]) == 6


def test_alarm_interrupts_catastrophic_regex_backtracking() -> None:
    with pytest.raises(BudgetExceeded):
        call_with_alarm(0.3, _CATASTROPHIC.match, "a" * 40 + "!")


def test_except_exception_cannot_swallow_the_budget() -> None:
    with pytest.raises(BudgetExceeded):
        call_with_alarm(0.2, _swallowing)


def test_alarm_is_disarmed_and_previous_handler_restored() -> None:
    import signal

    before = signal.getsignal(signal.SIGALRM)
    assert call_with_alarm(0.05, lambda: "quick") == "quick"
    time.sleep(0.15)  # a leftover timer would fire now and raise
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_alarm_refuses_other_threads() -> None:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            call_with_alarm(1.0, sum, [1])
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors and isinstance(errors[0], RuntimeError)


def test_budget_off_main_thread_uses_a_worker_process_and_kills_it_on_timeout() -> None:
    budget = TimeBudget(1.0, worker_target="time:sleep")
    out: dict[str, Any] = {}

    def body() -> None:
        out["mode"] = budget.mechanism()
        out["quick"] = budget.call(time.sleep, 0.01)
        try:
            budget.call(time.sleep, 60)
        except BudgetExceeded as exc:
            out["exceeded"] = exc.mechanism
        out["after"] = budget.call(time.sleep, 0.01)  # a fresh worker after the kill
        try:
            budget.call(time.sleep, "not a number")
        except WorkerError as exc:
            out["error"] = exc.kind

    started = time.monotonic()
    t = threading.Thread(target=body)
    t.start()
    t.join(timeout=120)
    budget.close()
    assert out["mode"] == "process"
    assert out["quick"] is None and out["after"] is None
    assert out["exceeded"] == "worker process killed"
    assert out["error"] == "TypeError"
    assert time.monotonic() - started < 60  # the 60 s sleep was cut short, not waited for


def test_zero_disables_the_budget() -> None:
    budget = TimeBudget(0)
    assert budget.mechanism() == "none"
    assert budget.call(sum, [2, 3]) == 5


def _slow_setup() -> None:  # a worker's model loading, in the spawned process
    time.sleep(1.5)


def _failing_setup() -> None:
    raise OSError("model file missing")


def test_worker_setup_runs_before_calls_and_is_not_charged_to_them() -> None:
    budget = TimeBudget(1.0, worker_target="time:sleep", worker_setup=f"{__name__}:_slow_setup")
    broken = TimeBudget(1.0, worker_target="time:sleep", worker_setup=f"{__name__}:_failing_setup")
    out: dict[str, Any] = {}

    def body() -> None:
        out["first"] = budget.call(time.sleep, 0.01)  # the 1.5 s setup is not part of its 1 s budget
        try:
            broken.call(time.sleep, 0.01)
        except WorkerError as exc:
            out["broken"] = (exc.kind, str(exc))

    t = threading.Thread(target=body)
    t.start()
    t.join(timeout=120)
    budget.close()
    broken.close()
    assert "first" in out and out["first"] is None
    assert budget.max_seconds < 1.0
    assert out["broken"][0] == "OSError" and "model file missing" in out["broken"][1]
