"""MMPretrain's own tools (``mmpretrain/.mim/tools``) on a digits config,
and what a digits training run prints."""
import os.path as osp
import subprocess
import sys

import pytest
from tool_utils import REPO

mmpretrain = pytest.importorskip('mmpretrain')
MIM_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
DIGITS = osp.join(REPO, 'configs', 'revode', 'hamiltonian_digits.py')


def run_mim_tool(tool, *args, timeout=600):
    """Run MMPretrain's ``tools/TOOL`` with this checkout importable."""
    import os
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               MPLBACKEND='Agg')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    return subprocess.run(
        [sys.executable, osp.join(MIM_TOOLS, tool)] + [str(a) for a in args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _output(result):
    return f'stdout:\n{result.stdout[-5000:]}\nstderr:\n{result.stderr[-5000:]}'


@pytest.mark.slow
def test_a_digits_run_patches_nothing_in_mmengine(digits_run):
    _, checkpoint, log = digits_run
    assert checkpoint.exists()
    # MMEngine's warning when OptimWrapper.step is replaced at run time
    assert 'has been overridden' not in log, log[-3000:]
