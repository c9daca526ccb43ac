"""tools/analysis_tools/collect_results.py over real runs of tools/train.py.

Six finished runs of one tiny config: three of 1 epoch (seed 0 twice, one
drawn seed), two of 2 epochs (seeds 0 and 1; seed 0's is the shared
``tiny_run``), one of 1 epoch with another step size h; and three that must
be left out: a diverged run, a run killed in its second epoch (its files as
the kill left them) and a folder without logs. The runs train side by side,
one thread each. The table pools runs only within an experiment, counts
seed 0's second run as a repeat and not as a seed, and names what it left
out and why.
"""
import json
import shutil
import statistics

import pytest
import torch
from tool_utils import start_tool, tiny_config, tool_main

from mmrevode.utils.results import read_run

DIVERGING = """
optim_wrapper = dict(optimizer=dict(lr=1e6))
param_scheduler = dict(_delete_=True, type='LinearLR', start_factor=1e-7,
                       by_epoch=True, begin=0, end=2)
"""
RUNS = {
    'e1_seed0': ['train_cfg.max_epochs=1'],
    'e1_seed0_again': ['train_cfg.max_epochs=1'],
    'e1_drawn': ['train_cfg.max_epochs=1', 'randomness.seed=None'],
    'e2_seed0': [],
    'e2_seed1': ['randomness.seed=1'],
    'h_seed0': ['train_cfg.max_epochs=1', 'model.backbone.h=0.2'],
}


def final(work_dir):
    """The last validation top-1, straight from the run's log."""
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [r['accuracy/top1'] for r in records if 'accuracy/top1' in r][-1]


@pytest.fixture(scope='module')
def runs(tmp_path_factory, cifar_root, tiny_run):
    root = tmp_path_factory.mktemp('runs')
    config = tiny_config(root / 'tiny.py', 'hamiltonian_cifar10.py',
                         cifar_root)
    # the shared run is a run of this very config: its text, seed 0
    with open(tiny_run.config) as f:
        assert f.read() == (root / 'tiny.py').read_text()
    work = root / 'work'
    shutil.copytree(tiny_run.work_dir, work / 'e2_seed0')
    diverging = tiny_config(root / 'diverging.py', 'hamiltonian_cifar10.py',
                            cifar_root, extra=DIVERGING)
    started = {
        name: start_tool('train.py', config, '--work-dir', work / name,
                         *(['--cfg-options'] + options if options else []),
                         log=root / f'{name}.log')
        for name, options in RUNS.items() if name != 'e2_seed0'
    }
    started['diverged'] = start_tool('train.py', diverging, '--work-dir',
                                     work / 'diverged',
                                     log=root / 'diverged.log')
    for name, process in started.items():
        expected = 1 if name == 'diverged' else 0
        assert process.wait(timeout=900) == expected, \
            (root / f'{name}.log').read_text()[-6000:]
    # killed in epoch 2: the second validation never logged, the start's
    # record still says running
    killed = work / 'killed'
    shutil.copytree(work / 'e2_seed0', killed)
    (scalars, ) = killed.glob('*/vis_data/scalars.json')
    lines = scalars.read_text().splitlines()
    last_val = max(i for i, line in enumerate(lines)
                   if 'accuracy/top1' in line)
    scalars.write_text('\n'.join(lines[:last_val]) + '\n')
    (info_file, ) = killed.glob('*/run_info.json')
    info = json.loads(info_file.read_text())
    info['status'] = 'running'
    info_file.write_text(json.dumps(info))
    (work / 'no_logs').mkdir()
    (work / 'no_logs' / 'last_checkpoint').write_text('epoch_1.pth')
    return work


@pytest.mark.slow
def test_collect_groups_experiments_and_seeds(runs, tmp_path, capsys):
    out_dir = tmp_path / 'results'
    status = tool_main('analysis_tools/collect_results.py')(
        [str(runs), '--out-dir', str(out_dir)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    with open(out_dir / 'results.json') as f:
        results = json.load(f)
    finals = {name: final(runs / name) for name in RUNS}
    drawn = torch.load(runs / 'e1_drawn' / 'epoch_1.pth',
                       weights_only=False)['meta']['seed']  # made here
    by_dir = {r['work_dir'].split('/')[-1]: r for r in results['runs']}
    assert set(by_dir) == set(RUNS)
    assert by_dir['e1_drawn']['seed'] == drawn
    assert by_dir['e1_drawn']['seed_drawn'] is True
    assert by_dir['e1_seed0']['seed'] == 0

    rows = {row['label']: row for row in results['table']['rows']}
    assert set(rows) == {
        'model.backbone.h=(unset), train_cfg.max_epochs=1',
        'model.backbone.h=(unset), train_cfg.max_epochs=2',
        'model.backbone.h=0.2, train_cfg.max_epochs=1'}
    one_epoch = rows['model.backbone.h=(unset), train_cfg.max_epochs=1'][
        'metrics']['CIFAR-10']
    # seed 0's two runs are one seed: averaged first, then over seeds
    per_seed = [statistics.fmean([finals['e1_seed0'],
                                  finals['e1_seed0_again']]),
                finals['e1_drawn']]
    assert (one_epoch['runs'], one_epoch['seeds']) == (3, 2)
    assert one_epoch['repeats'] == {'0': 2}
    assert one_epoch['mean'] == pytest.approx(statistics.fmean(per_seed))
    assert one_epoch['std'] == pytest.approx(statistics.stdev(per_seed))
    two_epochs = rows['model.backbone.h=(unset), train_cfg.max_epochs=2'][
        'metrics']['CIFAR-10']
    assert (two_epochs['runs'], two_epochs['seeds']) == (2, 2)
    assert two_epochs['repeats'] == {}
    assert two_epochs['mean'] == pytest.approx(
        statistics.fmean([finals['e2_seed0'], finals['e2_seed1']]))
    other_h = rows['model.backbone.h=0.2, train_cfg.max_epochs=1'][
        'metrics']['CIFAR-10']
    assert (other_h['runs'], other_h['mean']) == (1, finals['h_seed0'])

    markdown = (out_dir / 'results.md').read_text()
    cell = (f'{statistics.fmean(per_seed):.2f} ± '
            f'{statistics.stdev(per_seed):.2f} (2 seeds; repeats: seed 0 ×2)')
    assert ('| Hamiltonian-14 (model.backbone.h=(unset), '
            'train_cfg.max_epochs=1) | 1-1-1 | 8-16-32 | 14 |') in markdown
    assert cell in markdown, markdown
    assert f'| {drawn} (drawn) |' in markdown
    assert '| 0, a repeat |' in markdown

    left_out = {e['work_dir'].split('/')[-1]: e for e in results['left_out']}
    assert set(left_out) == {'diverged', 'killed', 'no_logs'}
    assert left_out['diverged']['status'] == 'diverged'
    assert left_out['diverged']['reason'].startswith(
        'diverged (validated up to epoch 1 of 2): Stopped at iteration')
    assert left_out['killed']['reason'].startswith(
        'unfinished (validated up to epoch 1 of 2); its last start ')
    assert left_out['killed']['reason'].endswith(
        'has not ended: still running, or killed')
    assert 'missing files: no */vis_data/scalars.json' in \
        left_out['no_logs']['reason']
    for name, entry in left_out.items():
        assert f'left out: {entry["work_dir"]}: {entry["reason"]}' in printed
    assert '6 runs in 3 experiments, 3 left out' in printed


@pytest.mark.slow
def test_seed_of_a_run_without_run_info(runs, tmp_path):
    """Runs that predate run_info.json: the seed MMEngine logged."""
    old = tmp_path / 'old'
    shutil.copytree(runs / 'e1_drawn', old)
    for path in old.glob('*/run_info.json'):
        path.unlink()
    drawn = torch.load(old / 'epoch_1.pth', weights_only=False)['meta'][
        'seed']  # made here
    run = read_run(str(old))
    assert run['seed'] == drawn and run['seed_drawn']
    assert run['status'] == 'finished' and run['config'] == 'tiny.py'


def test_summary_counts_repeats_of_a_seed_once():
    """Five runs of one experiment, three of them seed 0: the spread is over
    the three seeds, seed 0's runs averaged first."""
    from mmrevode.utils.results import _cell, summarize
    runs = [dict(seed=0, final=60.0), dict(seed=0, final=70.0),
            dict(seed=0, final=65.0), dict(seed=1, final=80.0),
            dict(seed=None, final=50.0, work_dir='old')]
    summary = summarize(runs)
    per_seed = [65.0, 80.0, 50.0]
    assert summary['mean'] == pytest.approx(statistics.fmean(per_seed))
    assert summary['std'] == pytest.approx(statistics.stdev(per_seed))
    assert (summary['runs'], summary['seeds']) == (5, 3)
    assert summary['repeats'] == {'0': 3}
    assert _cell(summary) == '65.00 ± 15.00 (3 seeds; repeats: seed 0 ×3)'
    # one seed, repeated: no spread at all
    assert _cell(summarize(runs[:2])) == '65.00 (repeats: seed 0 ×2)'
    assert _cell(summarize(runs[3:4])) == '80.00'
