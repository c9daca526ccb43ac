"""tools/reproduce_paper.py and tools/analysis_tools/collect_results.py.

The dry run lists the paper's 33 runs; a real run of four tiny experiments
(one epoch or four iterations, generated data, tools/dist_train.sh with one
CPU process) is collected into a table whose numbers are those the runs
logged, and the fewer-data figure.
"""
import glob
import json
import os.path as osp
import re

import numpy as np
import pytest
from tool_utils import REPO, assert_main_error, output, run_main, run_tool

from mmrevode.datasets import write_cifar10
from mmrevode.utils.paper import PAPER_EXPERIMENTS, plan_runs


def test_every_listed_config_exists():
    for group, names in PAPER_EXPERIMENTS.items():
        for name in names:
            path = osp.join(REPO, 'configs', 'revode', name + '.py')
            assert osp.isfile(path), (group, path)


def test_dry_run_lists_the_paper_runs(tmp_path, capsys):
    assert run_main('reproduce_paper.py', '--gpus', 4, '--dry-run',
                    '--work-root', tmp_path) == 0
    stdout = capsys.readouterr().out
    commands = [line for line in stdout.splitlines()
                if 'dist_train.sh' in line]
    assert len(commands) == 33
    assert '33 runs, 0 finished already, 33 to run' in stdout
    for scheme in ('hamiltonian', 'midpoint', 'leapfrog'):
        for data in ('cifar10', 'cifar100', 'stl10'):
            assert any(f'/{scheme}_{data}.py 4 ' in c for c in commands)
    assert sum('fewer_data/' in c for c in commands) == 12
    assert sum(re.search(r'/re[sv]net\d+_cifar', c) is not None
               for c in commands) == 12
    # batch 100 of the configs on 4 GPUs: 25 each, the paper's total batch
    assert all('train_dataloader.batch_size=25' in c for c in commands)
    assert all('--resume' in c for c in commands)
    assert not glob.glob(str(tmp_path / '*'))  # nothing ran


def test_launcher_none_needs_no_gpus(tmp_path, capsys):
    assert run_main('reproduce_paper.py', '--launcher', 'none', '--dry-run',
                    '--only', 'hamiltonian_cifar10$', '--work-root',
                    tmp_path) == 0
    assert 'tools/train.py' in capsys.readouterr().out
    # in a process of its own: the exit status of an argument error
    result = run_tool('reproduce_paper.py', '--dry-run', '--work-root',
                      tmp_path)
    assert result.returncode == 2
    assert '--gpus is required with --launcher pytorch' in result.stderr


def test_slurm_and_uneven_gpus(tmp_path):
    names = ['hamiltonian_cifar10']
    config_root = osp.join(REPO, 'configs', 'revode')
    (run, ) = plan_runs(names, 16, 'slurm', str(tmp_path), config_root,
                        partition='gpu', seeds=None)
    assert run['argv'][1].endswith('slurm_train.sh')
    assert run['argv'][2:4] == ['gpu', 'hamiltonian_cifar10']
    assert run['env'] == dict(GPUS='16', GPUS_PER_NODE='8')
    assert '--auto-scale-lr' in run['argv']  # 100 does not divide by 16
    runs = plan_runs(names, 1, 'none', str(tmp_path), config_root,
                     seeds=[0, 1])
    assert [r['work_dir'] for r in runs] == [
        str(tmp_path / 'hamiltonian_cifar10_seed0'),
        str(tmp_path / 'hamiltonian_cifar10_seed1')
    ]
    assert runs[1]['argv'][-1] == 'randomness.seed=1'
    with pytest.raises(ValueError, match='needs a partition'):
        plan_runs(names, 2, 'slurm', str(tmp_path), config_root)
    with pytest.raises(ValueError, match='one process'):
        plan_runs(names, 2, 'none', str(tmp_path), config_root)


TINY = {
    'hamiltonian_cifar10': """
model = dict(backbone=dict(arch=dict(_delete_=True, blocks=[1, 1, 1],
                                     widths=[8, 16, 32])),
             head=dict(in_channels=32))
train_cfg = dict(max_epochs=1)
""",
    'resnet32_cifar10': """
model = dict(backbone=dict(depth=8))
train_cfg = dict(max_epochs=1)
""",
}
for _pct in (20, 40):
    TINY[f'fewer_data/hamiltonian_cifar10_{_pct}pct'] = """
model = dict(backbone=dict(arch=dict(_delete_=True, blocks=[1, 1, 1],
                                     widths=[8, 16, 32])),
             head=dict(in_channels=32))
train_cfg = dict(max_iters=4, val_interval=2)
param_scheduler = dict(milestones=[2, 3])
default_hooks = dict(checkpoint=dict(interval=2))
"""


def write_tiny_configs(root, data_root):
    data = f'data_root={data_root!r}, verify_md5=False'
    for name, body in TINY.items():
        path = root / (name + '.py')
        path.parent.mkdir(parents=True, exist_ok=True)
        train = f'dict(dataset=dict({data}))' if 'fewer' in name else \
            f'dict({data})'
        path.write_text(
            f"_base_ = {osp.join(REPO, 'configs', 'revode', name + '.py')!r}"
            f"\n{body}"
            f'train_dataloader = dict(batch_size=10, num_workers=0, '
            f'dataset={train})\n'
            f'val_dataloader = dict(batch_size=10, num_workers=0, '
            f'dataset=dict({data}))\n'
            'test_dataloader = val_dataloader\n'
            'randomness = dict(seed=0)\n')


def logged_final(work_dir):
    """The last validation top-1 of a run, straight from its log."""
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r['accuracy/top1'] for r in records if 'accuracy/top1' in r][-1]


@pytest.mark.slow
def test_tiny_reproduction_and_results(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    write_cifar10(str(tmp_path / 'data'), images, np.arange(40) % 10,
                  images[:20], np.arange(20) % 10)
    write_tiny_configs(tmp_path / 'configs', str(tmp_path / 'data'))
    work = tmp_path / 'work'
    args = ('reproduce_paper.py', '--gpus', 1, '--config-root',
            tmp_path / 'configs', '--work-root', work, '--only',
            '^hamiltonian_cifar10$', '^resnet32_cifar10$',
            'hamiltonian_cifar10_[24]0pct')
    result = run_tool(*args, timeout=1200)
    assert result.returncode == 0, output(result)
    assert '4 runs, 0 finished already, 4 to run' in result.stdout
    assert result.stdout.count('done: ') == 4

    finals = {name: logged_final(work / name) for name in TINY}
    with open(work / 'results' / 'results.json') as f:
        results = json.load(f)
    rows = {row['model']: row for row in results['table']['rows']}
    assert set(rows) == {'Hamiltonian-14', 'ResNet-8'}
    assert rows['Hamiltonian-14']['metrics']['CIFAR-10']['mean'] == \
        finals['hamiltonian_cifar10']
    assert rows['ResNet-8']['metrics']['CIFAR-10']['mean'] == \
        finals['resnet32_cifar10']
    markdown = (work / 'results' / 'results.md').read_text()
    assert re.search(r'^\| Hamiltonian-14 \| 1-1-1 \| 8-16-32 \| 14 \| '
                     r'[\d.]+M \| ' +
                     re.escape(f'{finals["hamiltonian_cifar10"]:.2f}') +
                     r' \|$', markdown, re.M), markdown
    # the fewer-data series: 20%, 40% and the full-data run
    (series, ) = results['fewer_data'].values()
    assert [p['fraction'] for p in series] == [0.2, 0.4, 1.0]
    assert [p['mean'] for p in series] == [
        finals['fewer_data/hamiltonian_cifar10_20pct'],
        finals['fewer_data/hamiltonian_cifar10_40pct'],
        finals['hamiltonian_cifar10']
    ]
    figure = work / 'results' / 'fewer_data.png'
    assert figure.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    # launched again: everything is finished, nothing runs
    capsys.readouterr()
    assert run_main(*args, '--no-collect') == 0
    stdout = capsys.readouterr().out
    assert '4 runs, 4 finished already, 0 to run' in stdout
    assert 'start ' not in stdout

    # collect_results.py on the work dirs themselves
    assert run_main('analysis_tools/collect_results.py',
                    work / 'hamiltonian_cifar10', work / 'fewer_data',
                    '--out-dir', tmp_path / 'collected') == 0
    assert '3 runs' in capsys.readouterr().out
    assert osp.isfile(tmp_path / 'collected' / 'fewer_data.png')


def test_collect_results_without_runs_is_one_clear_message(tmp_path,
                                                           capsys):
    # in a process of its own: the exit status and no traceback
    result = run_tool('analysis_tools/collect_results.py', tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr, output(result)
    assert 'Error: no finished run with a logged validation' in \
        result.stderr
    status = run_main('analysis_tools/collect_results.py',
                      tmp_path / 'missing')
    assert_main_error(status, capsys.readouterr().err, 'is not a folder')
