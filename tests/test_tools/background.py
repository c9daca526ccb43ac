"""Tool runs that start with the test session and go on beside the other
tests.

A tool run in a process of its own takes one thread (``tool_command``), so
while the suite runs such tools one core is mostly idle. Long runs that a
test only needs at its end (the digits trainings) are started when the
session starts, one at a time at the lowest priority, on that core (the
tests meanwhile take one thread: conftest.py); the test that needs them
waits, and while it waits every core goes to them.
"""
import os
import threading
from collections import deque, namedtuple

#: A finished run: its exit code, the CPU seconds it took (user and system,
#: its own, not those of the tests beside it) and its log file.
Finished = namedtuple('Finished', 'returncode cpu log')


class BackgroundRuns:
    """Run command lines in the background, lowest priority first.

    Args:
        runs (dict): ``{key: (command, env, log)}``, started in this order.
        cores (int): Runs at the same time while a test waits. Defaults to
            the number of CPUs.
    """

    def __init__(self, runs: dict, cores: int = None):
        self._runs = dict(runs)
        self._pending = deque(self._runs)
        self._running = {}
        self._finished = {}
        self._slots = 1  # while the other tests run
        self._stopped = False
        self._changed = threading.Condition()
        cores = cores or os.cpu_count() or 1
        self._threads = [
            threading.Thread(target=self._work, daemon=True)
            for _ in range(cores)
        ]
        for thread in self._threads:
            thread.start()

    def _startable(self) -> bool:
        return self._stopped or (bool(self._pending)
                                 and len(self._running) < self._slots)

    def _work(self) -> None:
        import subprocess
        while True:
            with self._changed:
                self._changed.wait_for(self._startable)
                if self._stopped:
                    return
                key = self._pending.popleft()
                command, env, log = self._runs[key]
                with open(log, 'w') as f:
                    process = subprocess.Popen(
                        command, env=env, stdout=f, stderr=subprocess.STDOUT)
                # lowest priority: the tests in the foreground come first
                os.setpriority(os.PRIO_PROCESS, process.pid, 19)
                self._running[key] = process
            # wait4, not Popen.wait: the run's own CPU time
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            with self._changed:
                del self._running[key]
                self._finished[key] = Finished(
                    process.returncode, usage.ru_utime + usage.ru_stime, log)
                self._changed.notify_all()

    def wait(self, keys, timeout: float) -> dict:
        """The finished runs of ``keys``, waiting for them with every core.

        Raises:
            TimeoutError: If they have not finished after ``timeout``
                seconds.
        """
        keys = list(keys)
        with self._changed:
            # these first, on every core
            for key in reversed(keys):
                if key in self._pending:
                    self._pending.remove(key)
                    self._pending.appendleft(key)
            self._slots = len(self._threads)
            self._changed.notify_all()
            done = self._changed.wait_for(
                lambda: all(key in self._finished for key in keys), timeout)
            self._slots = 1
            if not done:
                raise TimeoutError(
                    f'runs not finished after {timeout:.0f} s: '
                    f'{[k for k in keys if k not in self._finished]}')
            return {key: self._finished[key] for key in keys}

    def stop(self) -> None:
        """Start nothing more and kill what runs."""
        with self._changed:
            self._stopped = True
            self._pending.clear()
            for process in self._running.values():
                process.kill()
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
