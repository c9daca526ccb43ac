"""configs/revode/*_digits.py through the real tools/train.py and test.py.

The first run a user can make without downloading anything: scikit-learn's
digits, 15 epochs on the CPU, then the test set through tools/test.py. Every
scheme at its default step size ``h`` and three seeds: the defaults were
chosen for learning as well as for reconstruction drift (docs/performance.md,
"Step size: learning against drift").
"""
import json
import os.path as osp

import pytest
from tool_utils import (DIGITS_CASES, DIGITS_SEEDS, REPO, digits_run_name,
                        run_main)

pytest.importorskip('sklearn')


@pytest.mark.slow
@pytest.mark.parametrize(
    'scheme, exact',
    DIGITS_CASES,
    ids=[f'{scheme}{"-exact" if exact else ""}'
         for scheme, exact in DIGITS_CASES])
def test_digits_config_trains_and_tests_to_97_percent(
        scheme, exact, digits_trainings, tmp_path):
    """The training runs are tools/train.py in processes of their own,
    started with the session (``digits_trainings``); the tests,
    tools/test.py's ``main`` in this process."""
    runs, root = digits_trainings
    finished = runs.wait([(scheme, exact, seed) for seed in DIGITS_SEEDS],
                         timeout=1800)
    for run in finished.values():
        with open(run.log) as f:
            assert run.returncode == 0, f.read()[-6000:]

    config = osp.join(REPO, 'configs', 'revode', f'{scheme}_digits.py')
    # test.py reads the same config: exact=True is set there too
    exact_options = ['--cfg-options', 'model.backbone.exact=True'
                     ] if exact else []
    accuracies = {}
    for seed in DIGITS_SEEDS:
        name = digits_run_name(scheme, exact, seed)
        metrics_file = tmp_path / f'metrics{seed}.json'
        assert run_main('test.py', config,
                        osp.join(root, name, 'epoch_15.pth'), '--work-dir',
                        tmp_path / f'test{seed}', '--out', metrics_file,
                        '--out-item', 'metrics', *exact_options) == 0
        with open(metrics_file) as f:
            accuracies[seed] = json.load(f)['accuracy/top1']
    cpu = max(run.cpu for run in finished.values())
    print(f'{scheme}{" (exact)" if exact else ""}: test accuracy per seed '
          f'{accuracies}, training CPU time at most {cpu:.0f} s a run')
    assert min(accuracies.values()) >= 97, accuracies
    # 40 to 120 CPU seconds a run on one thread; generous for a busy machine
    assert cpu < 240, f'{cpu:.0f} CPU seconds a run'
