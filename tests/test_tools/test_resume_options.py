"""tools/train.py --resume with --cfg-options, end to end.

A warm-up to a learning rate of 1e6 diverges in the second epoch; the remedy
that the error prints (resume from the newest checkpoint with a lower
``optim_wrapper.optimizer.lr``) then trains past the iteration where the run
had stopped. An option that a resumed run cannot take ends it with one line.
"""
import json
import re

import pytest
import torch
from tool_utils import (assert_main_error, output, run_main, run_tool,
                        state_dict, tiny_config)

# lr 1e6 * 1e-7 = 0.1 in epoch 1, then 1e6: NaN within a few iterations
DIVERGING = """
train_cfg = dict(max_epochs=3)
optim_wrapper = dict(optimizer=dict(lr=1e6))
param_scheduler = dict(_delete_=True, type='LinearLR', start_factor=1e-7,
                       by_epoch=True, begin=0, end=2)
"""


def assert_one_line_error(result, *phrases):
    assert result.returncode == 1, output(result)
    assert 'Traceback' not in result.stderr, output(result)
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('Error: ')]
    assert len(errors) == 1, output(result)
    for phrase in phrases:
        assert phrase in errors[0], output(result)


def _run_info(work_dir):
    return [json.loads(p.read_text())
            for p in sorted(work_dir.glob('*/run_info.json'))]


@pytest.mark.slow
def test_divergence_remedy_resumes_past_it(tmp_path, cifar_root, capsys):
    config = tiny_config(tmp_path / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root, extra=DIVERGING)
    work_dir = tmp_path / 'work'
    result = run_tool('train.py', config, '--work-dir', work_dir)
    assert_one_line_error(result, 'Stopped at iteration', '(epoch 2)')
    stopped = int(re.search(r'Stopped at iteration (\d+)',
                            result.stderr).group(1))
    remedy = re.search(r'\(--resume (\S+) --cfg-options '
                       r'(optim_wrapper\.optimizer\.lr)=LR, LR below the '
                       r'base learning rate 1e\+06', result.stderr)
    assert remedy, output(result)
    checkpoint = remedy.group(1)
    assert checkpoint == str(work_dir / 'epoch_1.pth')

    # refused: a seed other than the checkpoint's (nothing trains); the
    # one-line errors from train.py's main in this process
    capsys.readouterr()
    status = run_main('train.py', config, '--work-dir', work_dir, '--resume',
                      checkpoint, '--cfg-options', 'randomness.seed=1')
    assert_main_error(status, capsys.readouterr().err,
                      '--cfg-options randomness.seed=1 with --resume',
                      'was trained with seed 0')
    status = run_main('train.py', config, '--work-dir', work_dir, '--resume',
                      checkpoint, '--cfg-options',
                      'param_scheduler.by_epoch=False')
    assert_main_error(status, capsys.readouterr().err,
                      "'by_epoch' decides which scheduler")
    assert len(_run_info(work_dir)) == 1  # the refused runs did not start

    # the remedy, as printed, with a lower learning rate
    result = run_tool('train.py', config, '--work-dir', work_dir, '--resume',
                      checkpoint, '--cfg-options', f'{remedy.group(2)}=0.01')
    assert result.returncode == 0, output(result)
    log = result.stdout + result.stderr
    assert ('Resuming: lr 1e+06 from the checkpoint replaced by 0.01 from '
            '--cfg-options (optim_wrapper.optimizer.lr) as the base value; '
            'the current lr 1e+06 becomes 0.01.') in log
    resumed_log = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    iterations = [json.loads(line).get('iter', 0)
                  for line in resumed_log.read_text().splitlines()]
    assert max(iterations) == 12 > stopped  # past where it diverged
    assert 'lr: 1.0000e-02' in log and 'lr: 1.0000e+06' not in log
    final = state_dict(work_dir / 'epoch_3.pth')
    assert all(torch.isfinite(v).all() for v in final.values()
               if v.is_floating_point())
    first, second = _run_info(work_dir)
    assert first['status'] == 'diverged'
    assert first['message'].startswith(f'Stopped at iteration {stopped}')
    assert second['status'] == 'finished'
    assert second['resumed_from'] == checkpoint
    assert second['cfg_options'] == {'optim_wrapper.optimizer.lr': 0.01}
    assert first['seed'] == second['seed'] == 0


@pytest.mark.slow
@pytest.mark.parametrize('how', [['--resume'],
                                 ['--cfg-options', 'resume=True']])
def test_a_partial_copy_never_resumes_from_the_original(
        how, tiny_run, tiny_run_copy, capsys):
    """A copied work directory that lacks the checkpoint its
    ``last_checkpoint`` names (the original folder's): one line saying what
    to give, never a resume from the original folder."""
    (tiny_run_copy.work_dir / 'epoch_2.pth').unlink()
    capsys.readouterr()
    status = run_main('train.py', tiny_run_copy.config, '--work-dir',
                      tiny_run_copy.work_dir, *how)
    assert_main_error(status, capsys.readouterr().err,
                      f'names {tiny_run.work_dir / "epoch_2.pth"}',
                      f'{tiny_run_copy.work_dir} has no epoch_2.pth',
                      '--resume PATH')
    assert len(_run_info(tiny_run_copy.work_dir)) == 1  # nothing started
