"""Read the metrics of training runs and tabulate them as the paper does.

A *run* is a work directory of ``tools/train.py``. MMEngine writes, for every
start of the run (a resumed run has several), a folder ``<timestamp>/`` with
``vis_data/config.py`` (the full config) and ``vis_data/scalars.json`` (one
JSON record per line; validation records hold ``accuracy/top1`` and a
``step``, the epoch or the iteration); ``tools/train.py`` adds
``run_info.json`` (the seed actually used, drawn ones too, and how the
start ended; :mod:`mmrevode.engine.run_info`). :func:`read_run` reads them.

Runs are pooled only when they are the same *experiment*
(:func:`experiment_definition`: the config, the model, the training data and
its fraction, the total batch, the schedule and its length, the optimizer);
within one, runs of the same seed are repeats, so the spread (±) is taken
over seeds, not over runs (:func:`summarize`). Only finished runs enter the
tables: :func:`collect` lists the others (unfinished, diverged, failed,
missing files) with the reason. :func:`results_table` makes the table of the
paper's main results (models against data sets, in the README's model-table
format) and :func:`fewer_data_figure` the figure of test accuracy against
the fraction of training data.
"""
import copy
import glob
import json
import os
import os.path as osp
import re
import statistics
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from ..engine.run_info import RUN_INFO_FILE

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

    from ..models.backbones import BaseReversibleNet
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
    if isinstance(backbone, BaseReversibleNet):
        block_type = getattr(backbone, 'block_type', None)
        depth = backbone.depth  # the paper's count, as the blocks state it
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


#: Keys of a data-set config that say where the data lie, not what they are.
LOCATION_KEYS = ('data_root', 'data_prefix', 'ann_file', 'download',
                 'verify_md5', 'lazy_init', 'serialize_data')
#: Keys of ``train_cfg`` that change how often a run is validated, not how
#: it trains.
VALIDATION_KEYS = ('val_interval', 'val_begin', 'dynamic_intervals')
#: Statuses of a run: finished runs enter the tables.
FINISHED = 'finished'
#: How a label shows a key that a config does not set.
UNSET = '(unset)'


def _without(value, keys: Sequence[str]):
    """``value`` with ``keys`` removed from every dict in it."""
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items()
                if k not in keys}
    if isinstance(value, (list, tuple)):
        return [_without(v, keys) for v in value]
    return value


def _flatten(prefix: str, value, into: Dict[str, str]) -> None:
    """Dotted keys to JSON texts of the leaves of ``value``."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(f'{prefix}.{key}', value[key], into)
    elif isinstance(value, (list, tuple)) and value:
        for index, item in enumerate(value):
            _flatten(f'{prefix}.{index}', item, into)
    else:
        into[prefix] = json.dumps(value, sort_keys=True, default=str)


def experiment_definition(cfg: dict, config_name: str,
                          world_size: Optional[int] = None) -> Dict[str, str]:
    """What defines the experiment a run belongs to, as flat keys.

    The config's name, the model (architecture, ``h``, ...), the training
    set without where it lies (its type, fraction or samples per class,
    seed of the subset, pipeline), the total batch (``batch_size`` times
    the number of processes, when known), ``train_cfg`` without the
    validation interval (loop type and ``max_epochs`` / ``max_iters``),
    ``optim_wrapper``, ``param_scheduler`` and ``auto_scale_lr``. The seed,
    work directory, data location, loader workers and hooks are left out.
    ``--cfg-options`` that change any of these are part of the dumped
    config, so they make another experiment.

    Args:
        cfg (dict): A run's full config.
        config_name (str): The config file's name.
        world_size (int, optional): Processes of the run. Defaults to None
            (unknown: the per-process batch is used).

    Returns:
        dict: Dotted key -> JSON text of the value.
    """
    definition = {'config': json.dumps(config_name)}
    loader = cfg.get('train_dataloader') or {}
    _flatten('model', cfg.get('model'), definition)
    _flatten('data', _without(loader.get('dataset'), LOCATION_KEYS),
             definition)
    batch = loader.get('batch_size')
    if isinstance(batch, int) and world_size:
        batch *= world_size
    definition['total batch'] = json.dumps(batch)
    _flatten('train_cfg', _without(cfg.get('train_cfg'), VALIDATION_KEYS),
             definition)
    for key in ('optim_wrapper', 'param_scheduler', 'auto_scale_lr'):
        _flatten(key, cfg.get(key), definition)
    return definition


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _logged_seed(start_dir: str) -> Optional[int]:
    """The seed MMEngine logged at a start (``seed: N`` of the runtime
    environment), for runs that predate ``run_info.json``."""
    for path in glob.glob(osp.join(start_dir, '*.log')):
        try:
            with open(path, errors='replace') as f:
                for line in f:
                    found = re.fullmatch(r'\s+seed: (\d+)\s*', line)
                    if found:
                        return int(found.group(1))
        except OSError:
            continue
    return None


def _config_name(work_dir: str, infos: List[dict]) -> str:
    """The config file's name: recorded by ``tools/train.py``, else the copy
    MMEngine dumps into the work directory (the newest ``*.py``)."""
    for info in reversed(infos):
        if info.get('config'):
            return info['config']
    dumped = sorted(glob.glob(osp.join(work_dir, '*.py')),
                    key=osp.getmtime)
    return osp.basename(dumped[-1]) if dumped else osp.basename(
        osp.abspath(work_dir))


def _schedule(cfg) -> Tuple[str, Optional[int]]:
    """``('epoch', max_epochs)`` or ``('iter', max_iters)``."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg or train_cfg.get('by_epoch') is False or \
            str(train_cfg.get('type', '')).startswith('IterBased'):
        return 'iter', train_cfg.get('max_iters')
    return 'epoch', train_cfg.get('max_epochs')


def _changed_between_starts(definitions: List[Dict[str, str]]) -> List[str]:
    """``key: old -> new`` for what a resumed start changed in the way the
    run trains. A longer or shorter schedule (``train_cfg``) is not such a
    change: the run up to its end trained as a straight run of that length
    does."""
    changes = []
    for before, after in zip(definitions, definitions[1:]):
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key, UNSET), after.get(key, UNSET)
            if old != new and not key.startswith('train_cfg.'):
                changes.append(f'{key}: {old} -> {new}')
    return changes


def read_run(work_dir: str, metric: str = 'accuracy/top1') -> dict:
    """Read one run: its experiment, seed, status and validation metric.

    Args:
        work_dir (str): The run's work directory.
        metric (str): The metric to read. Defaults to ``'accuracy/top1'``.

    Returns:
        dict: ``work_dir``, ``config`` (the config file's name), the model
        description of :func:`describe_model` (``name``, ``family``,
        ``depth``, ``blocks``, ``widths``, ``params``), ``dataset``,
        ``fraction`` (of the training set; 1.0 for all of it),
        ``num_per_class``, ``seed`` (the one used, also when drawn; None if
        no file records it), ``seed_drawn``, ``definition``
        (:func:`experiment_definition` of the last start),
        ``changed_on_resume``, ``starts``, ``status`` (``'finished'``,
        ``'unfinished'``, ``'diverged'``, ``'failed'``, ``'interrupted'``),
        ``reason`` (why it is not finished), ``unit`` (``'epoch'`` or
        ``'iter'``), ``max_step``, ``metric``, ``final`` (the last
        validation), ``best``, ``final_step``, ``history`` (all
        validations).

    Raises:
        RunError: If the folder lacks the files of a run or holds no
            validation with the metric.
    """
    from mmengine.config import Config

    scalars = _scalars_files(work_dir)
    if not scalars:
        raise RunError(f'{work_dir}: missing files: no */vis_data/'
                       'scalars.json (not a work directory of tools/train.py, '
                       'or the run has not logged yet).')
    starts = [osp.dirname(osp.dirname(path)) for path in scalars]
    configs, infos = [], []
    for start in starts:
        config_file = osp.join(start, 'vis_data', 'config.py')
        if osp.isfile(config_file):
            configs.append(Config.fromfile(
                config_file, import_custom_modules=True).to_dict())
        infos.append(_read_json(osp.join(start, RUN_INFO_FILE)) or {})
    last_config = osp.join(starts[-1], 'vis_data', 'config.py')
    if not osp.isfile(last_config):
        raise RunError(f'{work_dir}: missing files: {last_config}.')
    cfg = configs[-1]
    history = read_validation(work_dir, metric)
    if not history:
        raise RunError(f'{work_dir}: no validation with {metric} was logged '
                       'yet.')
    name = _config_name(work_dir, infos)
    world_size = next((i['world_size'] for i in reversed(infos)
                       if i.get('world_size')), None)
    definitions = [experiment_definition(c, name, world_size)
                   for c in configs]
    seeds = [i.get('seed') for i in infos if i.get('seed') is not None]
    seed = seeds[0] if seeds else next(
        (s for s in map(_logged_seed, starts) if s is not None),
        (cfg.get('randomness') or {}).get('seed'))
    unit, max_step = _schedule(cfg)
    status, reason = _status(history[-1]['step'], unit, max_step,
                             infos[-1], starts[-1])
    run = dict(work_dir=osp.abspath(work_dir), config=name)
    run.update(describe_model(cfg['model']))
    run.update(_dataset_info(cfg['train_dataloader']['dataset']))
    run.update(
        seed=seed,
        seed_drawn=(cfg.get('randomness') or {}).get('seed') is None,
        definition=definitions[-1],
        changed_on_resume=_changed_between_starts(definitions),
        starts=len(starts),
        status=status,
        reason=reason,
        unit=unit,
        max_step=max_step,
        metric=metric,
        final=history[-1]['value'],
        best=max(r['value'] for r in history),
        final_step=history[-1]['step'],
        history=history)
    return run


def _status(final_step, unit: str, max_step: Optional[int], info: dict,
            start_dir: str) -> Tuple[str, Optional[str]]:
    """Whether a run finished, and why not: the last validation must be
    that of the last epoch (or iteration) of the schedule."""
    if isinstance(max_step, int) and isinstance(final_step, int) and \
            final_step >= max_step:
        return FINISHED, None
    done = f'validated up to {unit} {final_step} of {max_step}'
    status = info.get('status')
    if status == 'diverged':
        return 'diverged', f'diverged ({done}): {info.get("message", "")}'
    if status in ('failed', 'interrupted'):
        message = f': {info["message"]}' if info.get('message') else ''
        return status, f'{status} ({done}){message}'
    if status == 'running':
        return 'unfinished', (
            f'unfinished ({done}); its last start '
            f'{osp.basename(start_dir)} has not ended: still running, or '
            'killed')
    return 'unfinished', f'unfinished ({done})'


def summarize(runs: Sequence[dict]) -> dict:
    """The final metric over the runs of one experiment.

    Runs of the same seed are repeats: they are averaged into one value per
    seed, and mean and standard deviation are taken over seeds. A run whose
    seed is unknown counts as a seed of its own.

    Returns:
        dict: ``mean``, ``std`` (0 for one seed), ``runs``, ``seeds`` (the
        number of distinct seeds), ``per_seed`` (seed -> mean of its
        repeats) and ``repeats`` (seed -> runs, for seeds run more than
        once).
    """
    by_seed: Dict[str, List[float]] = defaultdict(list)
    for run in runs:
        seed = run.get('seed')
        key = str(seed) if seed is not None else \
            f'unknown ({run.get("work_dir", "?")})'
        by_seed[key].append(run['final'])
    per_seed = {seed: statistics.fmean(v) for seed, v in by_seed.items()}
    values = list(per_seed.values())
    return dict(
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else 0.0,
        runs=len(runs),
        seeds=len(values),
        per_seed=per_seed,
        repeats={s: len(v) for s, v in by_seed.items() if len(v) > 1})


def _cell(summary: Optional[dict], digits: int = 2) -> str:
    if summary is None:
        return ''
    text = f'{summary["mean"]:.{digits}f}'
    if summary['seeds'] > 1:
        text += f' ± {summary["std"]:.{digits}f}'
    notes = []
    if summary['seeds'] > 1:
        notes.append(f'{summary["seeds"]} seeds')
    if summary['repeats']:
        notes.append('repeats: ' + ', '.join(
            f'seed {s} ×{n}' for s, n in summary['repeats'].items()))
    return text + (f' ({"; ".join(notes)})' if notes else '')


def experiments(runs: Sequence[dict]) -> List[dict]:
    """Group runs by their experiment.

    Runs whose definitions (and changes on resume) are equal form one
    experiment. Where several experiments would share a cell of a table
    (same model, data set and fraction), each gets a ``label`` naming what
    sets it apart (e.g. ``train_cfg.max_epochs=1``).

    Returns:
        list[dict]: ``name``, ``dataset``, ``fraction``, ``num_per_class``,
        ``label``, ``definition``, ``runs`` and the :func:`summarize`
        figures as ``summary``.
    """
    groups: Dict[tuple, List[dict]] = defaultdict(list)
    for run in runs:
        key = (tuple(sorted(run['definition'].items())),
               tuple(run.get('changed_on_resume') or ()))
        groups[key].append(run)
    found = []
    for (definition, changes), members in groups.items():
        first = members[0]
        found.append(dict(
            name=first['name'], dataset=first['dataset'],
            fraction=first['fraction'],
            num_per_class=first['num_per_class'], label='',
            definition=dict(definition), changed_on_resume=list(changes),
            runs=members, summary=summarize(members)))
    cells: Dict[tuple, List[dict]] = defaultdict(list)
    for experiment in found:
        cells[(experiment['name'], experiment['dataset'],
               experiment['fraction'], experiment['num_per_class'])].append(
                   experiment)
    for members in cells.values():
        if len(members) > 1:
            _label(members)
    found.sort(key=lambda e: (_model_key(e['runs'][0]), e['dataset'],
                              e['fraction'] or 0, e['label']))
    return found


def _label(members: List[dict], limit: int = 3) -> None:
    """Label experiments by the keys in which they differ."""
    keys = sorted(set().union(*(m['definition'] for m in members)))
    differ = [k for k in keys
              if len({m['definition'].get(k) for m in members}) > 1]
    # the config name says little when the settings say more
    if len(differ) > 1 and 'config' in differ:
        differ.remove('config')
    for member in members:
        parts = [f'{k}={member["definition"].get(k, UNSET)}'
                 for k in differ[:limit]]
        if len(differ) > limit:
            parts.append(f'{len(differ) - limit} more')
        if member['changed_on_resume']:
            parts.append('changed on resume: ' +
                         '; '.join(member['changed_on_resume']))
        member['label'] = ', '.join(parts)


def _model_key(run: dict):
    family = run['family']
    order = MODEL_ORDER.index(family) if family in MODEL_ORDER else len(
        MODEL_ORDER)
    return (order, family, run['depth'] or 0, run['name'])


def results_table(runs: Sequence[dict]) -> dict:
    """The main results: one row per model (and experiment), one column per
    data set.

    Only full-training-set runs enter it. A cell is the final validation
    metric of one experiment: mean and standard deviation over seeds,
    repeats of a seed averaged first (:func:`summarize`). Where a model was
    trained in several experiments on a data set (e.g. different schedule
    lengths), each has its own row, labelled by what differs.

    Returns:
        dict: ``datasets`` (the columns), ``rows`` (per model and label:
        name, label, blocks, widths, depth, params, and per data set the
        :func:`summarize` figures) and ``markdown``.
    """
    full = [e for e in experiments(runs)
            if e['fraction'] == 1.0 and e['num_per_class'] is None]
    datasets = sorted({e['dataset'] for e in full},
                      key=lambda d: (DATASET_ORDER.index(d)
                                     if d in DATASET_ORDER else
                                     len(DATASET_ORDER), d))
    rows: Dict[tuple, dict] = {}
    for experiment in full:
        first = experiment['runs'][0]
        row = rows.setdefault(
            (experiment['name'], experiment['label']),
            dict(model=experiment['name'], label=experiment['label'],
                 blocks=first['blocks'], widths=first['widths'],
                 depth=first['depth'], params=first['params'], metrics={},
                 order=_model_key(first)))
        row['metrics'][experiment['dataset']] = experiment['summary']
    ordered = sorted(rows.values(), key=lambda r: (r['order'], r['label']))
    for row in ordered:
        row.pop('order')
    header = ['model', 'blocks per unit', 'widths', 'depth',
              'params (CIFAR-10 classifier)'] + [
                  f'top-1 {d}' for d in datasets]
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for row in ordered:
        name = row['model'] + (f' ({row["label"]})' if row['label'] else '')
        cells = [name, row['blocks'], row['widths'],
                 '' if row['depth'] is None else str(row['depth']),
                 f'{row["params"] / 1e6:.3f}M'] + [
                     _cell(row['metrics'].get(d)) for d in datasets]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return dict(datasets=datasets, rows=ordered,
                markdown='\n'.join(lines) + '\n')


def fewer_data_series(runs: Sequence[dict]) -> Dict[str, List[dict]]:
    """Test accuracy against training fraction, per model and data set.

    A series is kept for every (model, data set, label) with at least one
    experiment on a fraction of the training set; its full-data
    experiment gives the point at 100%. Each point is one experiment
    (:func:`summarize`).

    Returns:
        dict: ``'<model>, <data set>'`` (with the label, if any) -> points
        ``dict(fraction=..., mean=..., std=..., runs=..., seeds=...)``
        sorted by fraction.
    """
    groups: Dict[tuple, Dict[float, dict]] = defaultdict(dict)
    for experiment in experiments(runs):
        if experiment['fraction'] is None:
            continue
        groups[(experiment['name'], experiment['dataset'],
                experiment['label'])][experiment['fraction']] = \
            experiment['summary']
    series = {}
    for (name, dataset, label), points in sorted(groups.items()):
        if not any(f < 1.0 for f in points):
            continue
        title = f'{name}, {dataset}' + (f' ({label})' if label else '')
        series[title] = [
            dict(fraction=f, **{k: v for k, v in summary.items()})
            for f, summary in sorted(points.items())
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


def runs_markdown(runs: Sequence[dict]) -> str:
    """The runs in the tables, one line each: seed (drawn or set), final
    and best metric, and whether it repeats a seed of its experiment."""
    lines = ['| run | model | data | experiment | seed | final | best |',
             '|---|---|---|---|---|---|---|']
    for experiment in experiments(runs):
        seen = set()
        for run in sorted(experiment['runs'], key=lambda r: r['work_dir']):
            seed = '?' if run['seed'] is None else str(run['seed'])
            if run['seed_drawn'] and run['seed'] is not None:
                seed += ' (drawn)'
            if run['seed'] is not None and run['seed'] in seen:
                seed += ', a repeat'
            seen.add(run['seed'])
            data = run['dataset'] + (f' {100 * run["fraction"]:g}%'
                                     if run['fraction'] not in (None, 1.0)
                                     else '')
            lines.append(
                f'| {run["work_dir"]} | {run["name"]} | {data} | '
                f'{experiment["label"] or run["config"]} | {seed} | '
                f'{run["final"]:.2f} | {run["best"]:.2f} |')
    return '\n'.join(lines) + '\n'


def collect(work_dirs: Sequence[str], out_dir: str,
            metric: str = 'accuracy/top1') -> dict:
    """Read runs and write ``results.md``, ``results.json`` and, when there
    are fewer-data runs, ``fewer_data.png`` into ``out_dir``.

    Only finished runs enter the tables; the others are listed as left out,
    with the reason (unfinished, diverged, failed, missing files, nothing
    validated).

    Args:
        work_dirs (Sequence[str]): Work directories of runs, or folders
            whose subfolders are (e.g. the ``--work-root`` of
            ``tools/reproduce_paper.py``).
        out_dir (str): Where to write.
        metric (str): The metric. Defaults to ``'accuracy/top1'``.

    Returns:
        dict: What ``results.json`` holds: ``runs`` (those in the tables),
        ``experiments`` (their grouping), ``table``, ``fewer_data``,
        ``left_out`` (``work_dir``, ``status`` and ``reason`` of each run
        left out), and the paths written (``files``).
    """
    found = expand_work_dirs(work_dirs)
    os.makedirs(out_dir, exist_ok=True)
    runs, left_out = [], []
    for work_dir in found:
        try:
            run = read_run(work_dir, metric)
        except RunError as e:
            left_out.append(dict(work_dir=osp.abspath(work_dir),
                                 status='unreadable', reason=str(e)))
            continue
        if run['status'] == FINISHED:
            runs.append(run)
        else:
            left_out.append(dict(work_dir=run['work_dir'],
                                 status=run['status'], reason=run['reason']))
    table = results_table(runs)
    series = fewer_data_series(runs)
    files = dict(markdown=osp.join(out_dir, 'results.md'),
                 json=osp.join(out_dir, 'results.json'))
    text = [f'## Results ({metric}, the last validation of each finished '
            'run; ± over seeds, repeats of a seed averaged first)\n',
            table['markdown']]
    if series:
        files['figure'] = osp.join(out_dir, 'fewer_data.png')
        fewer_data_figure(series, files['figure'])
        text += ['\n## Fewer training data\n', fewer_data_markdown(series),
                 '\n![fewer training data](fewer_data.png)\n']
    if runs:
        text += ['\n## Runs\n', runs_markdown(runs)]
    if left_out:
        text += ['\n## Left out\n'] + [
            f'- {s["work_dir"]}: {s["reason"]}\n' for s in left_out]
    with open(files['markdown'], 'w') as f:
        f.write(''.join(text))
    grouped = [
        {k: v for k, v in e.items() if k != 'runs'} |
        dict(work_dirs=[r['work_dir'] for r in e['runs']])
        for e in experiments(runs)
    ]
    result = dict(metric=metric, runs=runs, experiments=grouped, table=table,
                  fewer_data=series, left_out=left_out, files=files)
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
