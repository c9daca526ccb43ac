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


@pytest.fixture
def run_tool():
    """Run ``tools/analysis_tools/NAME.py ARGS`` in a process of its own
    (the benchmark changes the allocator's settings); return its stdout."""

    def run(name, *args):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
                   os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1')
        done = subprocess.run(
            [sys.executable,
             osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py'),
             *map(str, args)],
            env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return run
