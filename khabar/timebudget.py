"""Per-call time budgets for pure-Python work that cannot be trusted to finish quickly.

Python cannot kill a thread, so a budget has to interrupt the work where it runs or run it
somewhere that can be killed. Two mechanisms, chosen per call:

* **Alarm** (in-process): on the main thread of a POSIX process, ``signal.setitimer(ITIMER_REAL)``
  arms a ``SIGALRM`` whose handler raises :class:`BudgetExceeded` inside the running code. Python
  runs signal handlers between bytecodes and the ``re`` engine checks for pending signals while it
  backtracks, so regex blow-ups and Python loops are interrupted; a single long call into a C
  extension that never checks signals is interrupted only when it returns. Beam's in-process
  FnApiRunner (the DirectRunner used by ``khabar run``) executes DoFns on the main thread, so this
  is the mechanism the ingest pipeline uses there: no extra process, no pickling, ~2 µs per call.
* **Worker process** (fallback): elsewhere (SDK harness threads under Flink/Dataflow/Prism, or
  non-POSIX), the call runs in a spawned child process; if it does not answer in time the child is
  killed (and respawned on the next call), and :class:`BudgetExceeded` is raised in the caller.

:class:`BudgetExceeded` derives from ``BaseException``, not ``Exception``, so that an
``except Exception`` inside the interrupted code cannot swallow it.

Example::

    from khabar.timebudget import BudgetExceeded, TimeBudget

    budget = TimeBudget(10.0, worker_target="khabar.enrich:enrich")
    try:
        article = budget.call(enrich, message)
    except BudgetExceeded:
        ...  # dead-letter it
"""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from typing import Any


class BudgetExceeded(BaseException):
    """The call ran past its time budget and was interrupted (or its worker process killed)."""

    def __init__(self, seconds: float, mechanism: str) -> None:
        super().__init__(f"time budget exceeded ({seconds:g} s, {mechanism})")
        self.seconds = seconds
        self.mechanism = mechanism


def alarm_available() -> bool:
    """True when the calling thread can use the ``SIGALRM`` mechanism."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def call_with_alarm(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` on the main thread, interrupting it with :class:`BudgetExceeded` after ``seconds``.

    Raises:
        BudgetExceeded: The call did not return in time.
        RuntimeError: Not on the main thread (use :class:`TimeBudget`, which falls back to a process).
    """
    if not alarm_available():
        raise RuntimeError("call_with_alarm needs the main thread of a POSIX process")
    armed = True

    def _on_alarm(signum: int, frame: Any) -> None:
        # A late alarm after the call returned (and was disarmed) must not raise in the caller.
        if armed:
            raise BudgetExceeded(seconds, "alarm")

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn(*args, **kwargs)
        finally:
            armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_READY_TIMEOUT_S = 300.0  # start-up of a worker (interpreter, imports, setup): not part of any budget


def _worker_loop(conn: Any, target: str, setup: str | None = None) -> None:
    # Runs in the child: import the target, run the setup, say so, then call the target for each
    # request until the parent closes the pipe.
    try:
        fn = _resolve(target)
        if setup:
            _resolve(setup)()
    except Exception as exc:
        conn.send((False, (type(exc).__name__, str(exc))))
        return
    conn.send((True, None))
    while True:
        try:
            args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send((True, fn(*args, **kwargs)))
        except Exception as exc:  # the parent re-raises it as the same kind of failure
            conn.send((False, (type(exc).__name__, str(exc))))


class WorkerError(Exception):
    """An exception raised by the target inside the worker process (type name kept in ``kind``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class _Worker:
    """One spawned child process that runs ``target`` for each request; killed on a timeout."""

    def __init__(self, target: str, setup: str | None = None) -> None:
        self._target = target
        self._setup = setup
        self._process: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe in a multi-threaded Beam worker
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_worker_loop, args=(child, self._target, self._setup), daemon=True,
                                    name="khabar-budget-worker")
        self._process.start()
        child.close()
        self._conn = parent
        # Wait for the worker to be ready before any call's clock starts: spawning an interpreter and
        # loading models takes seconds that no document should be charged for.
        try:
            ready = parent.poll(_READY_TIMEOUT_S)
            ok, value = parent.recv() if ready else (False, ("WorkerDied", "the budget worker did not start"))
        except EOFError:
            ok, value = False, ("WorkerDied", "the budget worker exited while starting")
        if not ok:
            self.kill()
            raise WorkerError(*value)

    def ensure_started(self) -> None:
        if self._process is None or not self._process.is_alive():
            self._start()

    def call(self, seconds: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.ensure_started()
        self._conn.send((args, kwargs))
        if not self._conn.poll(seconds):
            self.kill()
            raise BudgetExceeded(seconds, "worker process killed")
        try:
            ok, value = self._conn.recv()
        except EOFError as exc:  # the child died (out of memory, a crash in C code)
            self.kill()
            raise WorkerError("WorkerDied", "the budget worker process exited") from exc
        if not ok:
            raise WorkerError(*value)
        return value

    def kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=10)
            self._process = None


class TimeBudget:
    """Runs calls within ``seconds`` each: by alarm on the main thread, else in a worker process.

    Args:
        seconds: The budget per call; ``0`` or less disables it (the call runs unbounded).
        worker_target: ``"module:function"`` run in the worker process when the alarm cannot be used.
            It must be importable in a fresh interpreter and take the same arguments as ``fn``;
            without it, calls off the main thread run unbounded.
        worker_setup: ``"module:function"`` called once in each worker process before it takes calls
            (load models there: start-up is not charged to any call's budget).
    """

    def __init__(self, seconds: float, *, worker_target: str | None = None, worker_setup: str | None = None) -> None:
        self.seconds = seconds
        self.worker_target = worker_target
        self.worker_setup = worker_setup
        self._local = threading.local()  # one worker process per calling thread: no serialisation
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.max_seconds = 0.0  # the longest call seen that finished within the budget

    def mechanism(self) -> str:
        """``"alarm"``, ``"process"`` or ``"none"`` for a call made now from this thread."""
        if self.seconds <= 0:
            return "none"
        if alarm_available():
            return "alarm"
        return "process" if self.worker_target else "none"

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` within the budget.

        Raises:
            BudgetExceeded: It ran past the budget.
            WorkerError: In process mode, the target raised (its type name is in ``kind``).
        """
        mode = self.mechanism()
        started = time.perf_counter()
        if mode == "alarm":
            result = call_with_alarm(self.seconds, fn, *args, **kwargs)
        elif mode == "process":
            worker = getattr(self._local, "worker", None)
            if worker is None:
                worker = self._local.worker = _Worker(self.worker_target or "", self.worker_setup)
                with self._lock:
                    self._workers.append(worker)
            worker.ensure_started()
            started = time.perf_counter()
            result = worker.call(self.seconds, args, kwargs)
        else:
            result = fn(*args, **kwargs)
        self.max_seconds = max(self.max_seconds, time.perf_counter() - started)
        return result

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.kill()
        self._local = threading.local()
