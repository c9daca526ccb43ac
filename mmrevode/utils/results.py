"""Read the metrics of training runs and tabulate them as the paper does.

A *run* is a work directory of ``tools/train.py``. MMEngine writes, for every
start of the run (a resumed run has several), a folder ``<timestamp>/`` with
``vis_data/config.py`` (the full config) and ``vis_data/scalars.json`` (one
JSON record per line; validation records hold ``accuracy/top1`` and a
``step``, the epoch or the iteration). :func:`read_run` reads them,
:func:`results_table` makes the table of the paper's main results (models
against data sets, in the README's model-table format) and
:func:`fewer_data_figure` the figure of test accuracy against the fraction
of training data.
"""
import copy
import glob
import json
import os
import os.path as osp
import statistics
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

DATASET_NAMES = {
    'CheckedCIFAR10': 'CIFAR-10',
    'CIFAR10': 'CIFAR-10',
    'CheckedCIFAR100': 'CIFAR-100',
    'CIFAR100': 'CIFAR-100',
    'STL10': 'STL-10',
    'Digits': 'Digits',
}
#: Column order of the results table.
DATASET_ORDER = ('CIFAR-10', 'CIFAR-100', 'STL-10', 'Digits')
#: Convolutions per block, the paper's depth count (depth = that times the
#: number of blocks, plus the stem and the classifier).
CONVS_PER_BLOCK = {
    'HamiltonianNet': 4,  # K1, K1^T, K2, K2^T
    'MidpointNet': 2,  # K, K^T
    'LeapfrogNet': 2,  # K, K^T
    'RevNet': 4,  # two basic residual functions of two convolutions
}
#: Row order of the results table: baselines first, as in the paper.
MODEL_ORDER = ('ResNet', 'RevNet', 'Hamiltonian', 'Midpoint', 'Leapfrog')


class RunError(ValueError):
    """A folder is not a readable work directory of a training run."""


def _scalars_files(work_dir: str) -> List[str]:
    """``scalars.json`` of every start of the run, oldest first."""
    return sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))


def read_validation(work_dir: str, metric: str = 'accuracy/top1'
                    ) -> List[dict]:
    """Validation records of a run, in order, one per step.

    A step validated again after a resume keeps its latest record.

    Returns:
        list[dict]: ``dict(step=..., value=...)`` sorted by step.
    """
    records = {}
    for path in _scalars_files(work_dir):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                if metric in record:
                    records[record.get('step')] = record[metric]
    return [
        dict(step=step, value=value)
        for step, value in sorted(records.items(),
                                  key=lambda kv: (kv[0] is None, kv[0]))
    ]


def _dataset_info(dataset: dict) -> dict:
    """Name of a training set and the fraction of it that is used."""
    info = dict(dataset=dataset.get('type', '?'), fraction=1.0,
                num_per_class=None)
    if dataset.get('type') == 'ClassBalancedSubset':
        inner = _dataset_info(dataset['dataset'])
        info['dataset'] = inner['dataset']
        info['fraction'] = dataset.get('fraction')
        info['num_per_class'] = dataset.get('num_per_class')
    info['dataset'] = DATASET_NAMES.get(info['dataset'], info['dataset'])
    return info


def describe_model(model_cfg: dict) -> dict:
    """The paper's name of a classifier config's backbone, with its layout
    and its number of parameters (of the classifier with a 10-class head).

    Returns:
        dict: ``name`` (e.g. ``'Hamiltonian-74'``, ``'ResNet-32'``),
        ``family`` (``'Hamiltonian'``, ``'ResNet'``, ...), ``depth``,
        ``blocks`` (e.g. ``'6-6-6'``), ``widths`` and ``params``.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    cfg = copy.deepcopy(model_cfg)
    if isinstance(cfg.get('head'), dict) and 'num_classes' in cfg['head']:
        cfg['head']['num_classes'] = 10
    model = MODELS.build(cfg)
    backbone = model.backbone
    kind = type(backbone).__name__
    params = sum(p.numel() for p in model.parameters())
    if kind == 'CifarResNet':
        depth = backbone.depth
        blocks = '-'.join([str((depth - 2) // 6)] * 3) + ' basic'
        return dict(
            name=f'ResNet-{depth}', family='ResNet', depth=depth,
            blocks=blocks, widths='16-32-64', params=params)
    if kind in CONVS_PER_BLOCK:
        convs = CONVS_PER_BLOCK[kind]
        block_type = getattr(backbone, 'block_type', None)
        if block_type == 'bottleneck':
            convs = 6
        depth = convs * sum(backbone.blocks) + 2
        family = kind[:-3] if kind.endswith('Net') and kind != 'RevNet' \
            else kind
        blocks = '-'.join(str(b) for b in backbone.blocks)
        if block_type is not None:
            blocks += f' {block_type}'
        return dict(
            name=f'{family}-{depth}', family=family, depth=depth,
            blocks=blocks, widths='-'.join(str(w) for w in backbone.widths),
            params=params)
    return dict(name=kind, family=kind, depth=None, blocks='', widths='',
                params=params)


def read_run(work_dir: str, metric: str = 'accuracy/top1') -> dict:
    """Read one run: its model, data, and validation metric.

    Args:
        work_dir (str): The run's work directory.
        metric (str): The metric to read. Defaults to ``'accuracy/top1'``.

    Returns:
        dict: ``work_dir``, ``config`` (the config file's name), the model
        description of :func:`describe_model` (``name``, ``family``,
        ``depth``, ``blocks``, ``widths``, ``params``), ``dataset``,
        ``fraction`` (of the training set; 1.0 for all of it),
        ``num_per_class``, ``seed``, ``metric``, ``final`` (the last
        validation), ``best``, ``final_step``, ``history`` (all
        validations).

    Raises:
        RunError: If the folder holds no log with the metric.
    """
    from mmengine.config import Config

    scalars = _scalars_files(work_dir)
    if not scalars:
        raise RunError(f'{work_dir} holds no */vis_data/scalars.json: not a '
                       'work directory of tools/train.py, or the run has '
                       'not logged yet.')
    config_file = osp.join(osp.dirname(scalars[-1]), 'config.py')
    if not osp.isfile(config_file):
        raise RunError(f'{work_dir}: {config_file} is missing.')
    cfg = Config.fromfile(config_file, import_custom_modules=True)
    history = read_validation(work_dir, metric)
    if not history:
        raise RunError(f'{work_dir}: no validation with {metric} was logged '
                       'yet.')
    run = dict(work_dir=osp.abspath(work_dir),
               config=osp.basename(cfg.get('filename', '') or work_dir))
    run.update(describe_model(cfg.model.to_dict()))
    run.update(_dataset_info(cfg.train_dataloader.dataset.to_dict()))
    run.update(
        seed=cfg.get('randomness', {}).get('seed'),
        metric=metric,
        final=history[-1]['value'],
        best=max(r['value'] for r in history),
        final_step=history[-1]['step'],
        history=history)
    return run


def _model_key(run: dict):
    family = run['family']
    order = MODEL_ORDER.index(family) if family in MODEL_ORDER else len(
        MODEL_ORDER)
    return (order, family, run['depth'] or 0, run['name'])


def _summary(values: Sequence[float]) -> dict:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return dict(mean=mean, std=std, runs=len(values))


def _cell(summary: Optional[dict], digits: int = 2) -> str:
    if summary is None:
        return ''
    if summary['runs'] == 1:
        return f'{summary["mean"]:.{digits}f}'
    return (f'{summary["mean"]:.{digits}f} ± {summary["std"]:.{digits}f} '
            f'({summary["runs"]} runs)')


def results_table(runs: Sequence[dict]) -> dict:
    """The main results: one row per model, one column per data set.

    Only full-training-set runs enter it; a cell is the final validation
    metric (mean, standard deviation and count over runs when a model was
    trained several times on a data set).

    Returns:
        dict: ``datasets`` (the columns), ``rows`` (per model: name, blocks,
        widths, depth, params, and per data set ``mean``, ``std``,
        ``runs``) and ``markdown``.
    """
    full = [r for r in runs if r['fraction'] == 1.0 and
            r['num_per_class'] is None]
    datasets = sorted({r['dataset'] for r in full},
                      key=lambda d: (DATASET_ORDER.index(d)
                                     if d in DATASET_ORDER else
                                     len(DATASET_ORDER), d))
    by_model: Dict[str, List[dict]] = defaultdict(list)
    for run in full:
        by_model[run['name']].append(run)
    rows = []
    for name in sorted(by_model, key=lambda n: _model_key(by_model[n][0])):
        model_runs = by_model[name]
        first = model_runs[0]
        row = dict(
            model=name, blocks=first['blocks'], widths=first['widths'],
            depth=first['depth'], params=first['params'], metrics={})
        for dataset in datasets:
            values = [r['final'] for r in model_runs
                      if r['dataset'] == dataset]
            if values:
                row['metrics'][dataset] = _summary(values)
        rows.append(row)
    header = ['model', 'blocks per unit', 'widths', 'depth',
              'params (CIFAR-10 classifier)'] + [
                  f'top-1 {d}' for d in datasets]
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for row in rows:
        cells = [row['model'], row['blocks'], row['widths'],
                 '' if row['depth'] is None else str(row['depth']),
                 f'{row["params"] / 1e6:.3f}M'] + [
                     _cell(row['metrics'].get(d)) for d in datasets]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return dict(datasets=datasets, rows=rows,
                markdown='\n'.join(lines) + '\n')


def fewer_data_series(runs: Sequence[dict]) -> Dict[str, List[dict]]:
    """Test accuracy against training fraction, per model and data set.

    A series is kept for every (model, data set) with at least one run on a
    fraction of the training set; its full-data runs give the point at
    100%.

    Returns:
        dict: ``'<model>, <data set>'`` -> points ``dict(fraction=...,
        mean=..., std=..., runs=...)`` sorted by fraction.
    """
    groups: Dict[tuple, Dict[float, List[float]]] = defaultdict(
        lambda: defaultdict(list))
    for run in runs:
        if run['fraction'] is None:
            continue
        groups[(run['name'], run['dataset'])][run['fraction']].append(
            run['final'])
    series = {}
    for (name, dataset), points in sorted(groups.items()):
        if not any(f < 1.0 for f in points):
            continue
        series[f'{name}, {dataset}'] = [
            dict(fraction=f, **_summary(v)) for f, v in sorted(points.items())
        ]
    return series


def fewer_data_figure(series: Dict[str, List[dict]], out_file: str) -> None:
    """Plot :func:`fewer_data_series` (one line per model and data set,
    test accuracy in % against the percentage of training data) to a PNG.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        x = [100 * p['fraction'] for p in points]
        y = [p['mean'] for p in points]
        err = [p['std'] for p in points]
        ax.errorbar(x, y, yerr=err if any(err) else None, marker='o',
                    capsize=3, label=label)
    ax.set_xlabel('training data used (%)')
    ax.set_ylabel('test accuracy (top-1, %)')
    ax.set_title('Fewer training data')
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def fewer_data_markdown(series: Dict[str, List[dict]]) -> str:
    """:func:`fewer_data_series` as a Markdown table: one row per series,
    one column per training fraction."""
    fractions = sorted({p['fraction'] for s in series.values() for p in s})
    header = ['model, data set'] + [f'{100 * f:g}%' for f in fractions]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for label, points in series.items():
        by_fraction = {p['fraction']: p for p in points}
        lines.append('| ' + ' | '.join(
            [label] + [_cell(by_fraction.get(f)) for f in fractions]) + ' |')
    return '\n'.join(lines) + '\n'


def collect(work_dirs: Sequence[str], out_dir: str,
            metric: str = 'accuracy/top1') -> dict:
    """Read runs and write ``results.md``, ``results.json`` and, when there
    are fewer-data runs, ``fewer_data.png`` into ``out_dir``.

    Args:
        work_dirs (Sequence[str]): Work directories of runs, or folders
            whose subfolders are (e.g. the ``--work-root`` of
            ``tools/reproduce_paper.py``).
        out_dir (str): Where to write.
        metric (str): The metric. Defaults to ``'accuracy/top1'``.

    Returns:
        dict: What ``results.json`` holds: ``runs``, ``table``,
        ``fewer_data``, ``skipped`` (folders that could not be read, with
        the reason), and the paths written (``files``).
    """
    found = expand_work_dirs(work_dirs)
    os.makedirs(out_dir, exist_ok=True)
    runs, skipped = [], []
    for work_dir in found:
        try:
            runs.append(read_run(work_dir, metric))
        except RunError as e:
            skipped.append(dict(work_dir=work_dir, reason=str(e)))
    table = results_table(runs)
    series = fewer_data_series(runs)
    files = dict(markdown=osp.join(out_dir, 'results.md'),
                 json=osp.join(out_dir, 'results.json'))
    text = [f'## Results ({metric}, the last validation of each run)\n',
            table['markdown']]
    if series:
        files['figure'] = osp.join(out_dir, 'fewer_data.png')
        fewer_data_figure(series, files['figure'])
        text += ['\n## Fewer training data\n', fewer_data_markdown(series),
                 '\n![fewer training data](fewer_data.png)\n']
    if skipped:
        text += ['\n## Not read\n'] + [
            f'- {s["work_dir"]}: {s["reason"]}\n' for s in skipped]
    with open(files['markdown'], 'w') as f:
        f.write(''.join(text))
    result = dict(metric=metric, runs=runs, table=table, fewer_data=series,
                  skipped=skipped, files=files)
    with open(files['json'], 'w') as f:
        json.dump(result, f, indent=2)
    return result


def expand_work_dirs(paths: Sequence[str]) -> List[str]:
    """Work directories among ``paths``: each path that holds logs of a run
    itself, else each of its subfolders (recursively) that does."""
    found = []
    for path in paths:
        if not osp.isdir(path):
            raise RunError(f'{path} is not a folder.')
        if glob.glob(osp.join(path, '*', 'vis_data')) or osp.isfile(
                osp.join(path, 'last_checkpoint')):
            found.append(path)
            continue
        subfolders = sorted(
            osp.join(path, name) for name in os.listdir(path)
            if osp.isdir(osp.join(path, name)))
        found += expand_work_dirs(subfolders) if subfolders else []
    return found
