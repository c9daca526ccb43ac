import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def one_thread():
    """Timing loops of many tiny ops crawl when threads share busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _start(name, *args):
    """Start ``tools/analysis_tools/NAME.py ARGS`` in a process of its own
    (one thread); ``communicate()`` gives its stdout and stderr."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1')
    return subprocess.Popen(
        [sys.executable,
         osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py'),
         *map(str, args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def start_tool():
    """Start a tool (``_start``); several run side by side."""
    started = []

    def start(name, *args):
        started.append(_start(name, *args))
        return started[-1]

    yield start
    for process in started:  # none left behind by a failure
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def run_tool(start_tool):
    """Run ``tools/analysis_tools/NAME.py ARGS`` in a process of its own
    (the benchmark changes the allocator's settings); return its stdout."""

    def run(name, *args):
        process = start_tool(name, *args)
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        return stdout

    return run
