"""Helpers of the end-to-end tests: run a tool, write a tiny config."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = "dict(_delete_=True, blocks=[1, 1, 1], widths=[8, 16, 32])"
#: The digits configs trained by test_digits_configs.py: ``(scheme, exact)``
#: (exact mode, fixed-point pairs, for one scheme: docs/engine.md has all
#: three), each with every seed.
DIGITS_CASES = (('hamiltonian', False), ('midpoint', False),
                ('leapfrog', False), ('hamiltonian', True))
DIGITS_SEEDS = (0, 1, 2)


def digits_run_name(scheme, exact, seed):
    """The folder (and log) name of one digits training."""
    return f'{scheme}{"_exact" if exact else ""}_seed{seed}'


def tool_command(tool, *args):
    """The command line and environment (one thread) of ``tools/TOOL``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    return [sys.executable, osp.join(REPO, 'tools', tool)] + [
        str(a) for a in args
    ], env


def load_script(path):
    """The script ``REPO/PATH`` (e.g. ``tools/test.py``) as a module, to
    call its ``main(argv)`` in this process."""
    name = 'script_' + path.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(tool, *args, timeout=600):
    command, env = tool_command(tool, *args)
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout)


def start_tool(tool, *args, log):
    """Start ``tools/TOOL`` in the background, its output going to ``log``."""
    command, env = tool_command(tool, *args)
    with open(log, 'w') as f:
        return subprocess.Popen(
            command, env=env, stdout=f, stderr=subprocess.STDOUT)


def output(result):
    return (f'stdout:\n{result.stdout[-6000:]}\n'
            f'stderr:\n{result.stderr[-6000:]}')


def tiny_config(path, base, data_root, extra='', batch_size=10,
                wrapped=False, num_workers=0):
    """A config that inherits ``base`` with a tiny model and local data.

    ``wrapped``: the training set is inside a wrapper (fewer-data configs).
    """
    data = (f"data_root={data_root!r}"
            + (", verify_md5=False" if 'cifar' in base else ''))
    train_data = f"dataset=dict({data})" if wrapped else data
    text = f"""
_base_ = {osp.join(REPO, 'configs', 'revode', base)!r}
model = dict(
    backbone=dict(arch={TINY_ARCH}), head=dict(in_channels=32))
train_dataloader = dict(
    batch_size={batch_size}, num_workers={num_workers},
    dataset=dict({train_data}))
val_dataloader = dict(
    batch_size={batch_size}, num_workers=0, dataset=dict({data}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def images(rng, n, size):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def state_dict(path):
    """The weights of a checkpoint the tools wrote (trusted: made here)."""
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict']


class WritesFile:
    """Unpickling this object creates ``path``: a stand-in for code that a
    crafted file runs."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


def tool_main(tool):
    """The ``main`` of ``tools/TOOL``, to call in this process."""
    import importlib.util
    path = osp.join(REPO, 'tools', tool)
    name = 'tool_' + tool.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def wait_for_a_new_run_name():
    """Wait for the next second if a Runner was built in this one.

    MMEngine names a run's logger and visualizer after the config file and
    the second the run started: a second run of the same config in the same
    second of this process would get the first one's (its log file, its
    output stream)."""
    import time

    from mmengine.logging import MMLogger
    latest = MMLogger.get_current_instance().instance_name
    while latest.endswith(time.strftime('%Y%m%d_%H%M%S')):
        time.sleep(1.02 - time.time() % 1)


def run_main(tool, *args):
    """Run ``tools/TOOL``'s ``main`` (``demo/...`` and ``tools/...`` paths
    taken as they are) on ``args`` in this process; return its exit status.
    Read what it printed with ``capsys``."""
    path = tool if tool.startswith(('demo/', 'tools/')) else f'tools/{tool}'
    main = load_script(path).main
    wait_for_a_new_run_name()
    return main([str(a) for a in args])


def error_line(err):
    """The one ``Error:`` line a tool printed, checking there is no other
    and no traceback."""
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if line.startswith('Error:')]
    assert len(lines) == 1, err
    return lines[0]


def assert_main_error(status, err, *phrases):
    """A tool's ``main`` ended with exit status 1, one ``Error:`` line and
    every phrase in what it printed to stderr."""
    assert status == 1, err
    error_line(err)
    for phrase in phrases:
        assert phrase in err, err
