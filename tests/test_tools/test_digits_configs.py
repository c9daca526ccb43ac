"""configs/revode/*_digits.py through the real tools/train.py and test.py.

The first run a user can make without downloading anything: scikit-learn's
digits, 15 epochs on the CPU, then the test set through tools/test.py. Every
scheme at its default step size ``h`` and three seeds: the defaults were
chosen for learning as well as for reconstruction drift (docs/performance.md,
"Step size: learning against drift").
"""
import json
import os.path as osp
import resource

import pytest
from tool_utils import REPO, output, run_tool

pytest.importorskip('sklearn')


@pytest.mark.slow
@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('scheme', ['hamiltonian', 'midpoint', 'leapfrog'])
def test_digits_config_trains_and_tests_to_97_percent(scheme, seed, tmp_path):
    config = osp.join(REPO, 'configs', 'revode', f'{scheme}_digits.py')
    work_dir = tmp_path / 'work'
    options = ['--cfg-options', f'randomness.seed={seed}']
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_tool('train.py', config, '--work-dir', work_dir, *options)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, output(result)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime -
           before.ru_stime)

    metrics_file = tmp_path / 'metrics.json'
    result = run_tool('test.py', config, work_dir / 'epoch_15.pth',
                      '--work-dir', tmp_path / 'test', '--out', metrics_file,
                      '--out-item', 'metrics', *options)
    assert result.returncode == 0, output(result)
    with open(metrics_file) as f:
        accuracy = json.load(f)['accuracy/top1']
    print(f'{scheme}, seed {seed}: test accuracy {accuracy:.2f}%, training '
          f'CPU time {cpu:.0f} s')
    assert accuracy >= 97, accuracy
    # 75 to 110 CPU seconds on one thread; generous for a loaded machine
    assert cpu < 240, f'{cpu:.0f} CPU seconds'
