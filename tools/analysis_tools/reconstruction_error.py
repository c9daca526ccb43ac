"""How exactly a unit's input is rebuilt from its output, per scheme and depth.

The reversible backward never stores a unit's inner states: it rebuilds them
from the unit's output, one step at a time, backwards. In exact arithmetic
the rebuilt states are the forward's; in floating point every step adds
round-off, and a scheme whose inverse amplifies it (a step with
``|alpha| < 1``, or a long unit of a non-contractive inverse) drifts. This
tool measures the drift directly: for every unit of a backbone it runs the
blocks forward from the unit's real input, then inverts them all
(:meth:`ReversibleBlock.inverse`), and reports

    error = ||(a, b) - (a0, b0)|| / ||(a0, b0)||

where ``(a0, b0)`` is the pair the unit started from and ``(a, b)`` the one
rebuilt. Norms run as in the reversible backward: with batch statistics,
running statistics untouched. Each model is measured in float32 and float64,
at initialisation and after a few SGD steps on a small synthetic
classification task (images made of one of ten fixed random patterns plus
noise), so that the weights are no longer the initial ones.

Models are ``TYPE:ARCH`` (``MidpointNet:182``, ``"HamiltonianNet:{'blocks':
[4, 4, 4], 'widths': [32, 64, 128]}"``) or ``TYPE`` with
``--blocks-per-unit`` for a depth sweep. The tool prints a table and writes
``--json`` (one record per model, state and dtype, with the error of every
unit) and ``--plot`` (the worst unit's error against depth, one line per
scheme and dtype, initialised and trained side by side).

Example::

    python tools/analysis_tools/reconstruction_error.py HamiltonianNet \\
        MidpointNet LeapfrogNet --blocks-per-unit 1 4 16 64 \\
        --json docs/figures/reconstruction_error.json \\
        --plot docs/figures/reconstruction_error.png
"""
import argparse
import ast
import logging
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Depth (counted as in the paper) = LAYERS_PER_BLOCK * blocks + 2.
LAYERS_PER_BLOCK = {
    'HamiltonianNet': 4,
    'MidpointNet': 2,
    'LeapfrogNet': 2,
}
RECORD_FIELDS = ('name', 'model', 'arch', 'depth', 'blocks', 'h', 'state',
                 'train_steps', 'dtype', 'batch_size', 'input_size',
                 'unit_errors', 'max_error')


# -- models -------------------------------------------------------------------
def _registry():
    import mmrevode  # noqa: F401  (registers the backbones)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS


def parse_spec(spec: str) -> dict:
    """``'TYPE:ARCH'`` to ``dict(name, model, arch, blocks, depth)``."""
    type_name, _, arch = spec.partition(':')
    cls = _registry().get(type_name)
    if cls is None:
        raise ValueError(f'{type_name!r} is not a backbone registered in '
                         'MMPretrain.')
    if not arch:
        raise ValueError(f'{spec!r}: give TYPE:ARCH, or TYPE with '
                         '--blocks-per-unit.')
    value = ast.literal_eval(arch) if arch[0] in '{[(' else arch
    settings = getattr(cls, 'arch_settings', {})
    if isinstance(value, dict):
        blocks = list(value['blocks'])
    elif str(value).lower() in settings:
        blocks = list(settings[str(value).lower()]['blocks'])
    else:
        raise ValueError(f'{type_name} has no preset {value!r}; presets: '
                         f'{sorted(settings)}.')
    per_block = LAYERS_PER_BLOCK.get(type_name)
    depth = per_block * sum(blocks) + 2 if per_block else None
    if isinstance(value, dict):
        name = f'{type_name}-{depth}' if depth else f'{type_name}-{blocks}'
    else:
        name = f'{type_name}-{value}'
    return dict(name=name, model=type_name, arch=value, blocks=blocks,
                depth=depth)


def sweep_specs(model: str, blocks_per_unit: Sequence[int],
                widths: Sequence[int]) -> List[str]:
    """``TYPE:{'blocks': [n] * len(widths), 'widths': widths}`` for each n."""
    return [
        f'{model}:' + repr(dict(blocks=[n] * len(widths), widths=list(widths)))
        for n in blocks_per_unit
    ]


def build_backbone(spec: dict,
                   backbone_options: Optional[dict] = None,
                   seed: int = 0) -> nn.Module:
    from mmengine.logging import MMLogger
    cfg = dict(type=spec['model'], arch=spec['arch'])
    cfg.update(backbone_options or {})
    torch.manual_seed(seed)
    backbone = _registry().build(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        backbone.init_weights()
    finally:
        logger.setLevel(level)
    return backbone


# -- data and training --------------------------------------------------------
class PatternData:
    """Ten fixed random patterns; an image is one of them plus noise."""

    def __init__(self, input_size: int = 32, num_classes: int = 10,
                 noise: float = 0.5, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.patterns = torch.randn(
            num_classes, 3, input_size, input_size, generator=self.generator)
        self.noise = noise

    def batch(self, batch_size: int):
        labels = torch.randint(0, len(self.patterns), (batch_size, ),
                               generator=self.generator)
        noise = torch.randn(batch_size, *self.patterns.shape[1:],
                            generator=self.generator)
        return self.patterns[labels] + self.noise * noise, labels


def train(backbone: nn.Module,
          data: PatternData,
          steps: int,
          batch_size: int,
          lr: float = 0.05) -> List[float]:
    """A few SGD steps of backbone + pooling + linear head; the losses."""
    if steps <= 0:
        return []
    backbone.train()
    with torch.no_grad():
        x, _ = data.batch(2)
        channels = backbone(x)[-1].shape[1]
    head = nn.Linear(channels, len(data.patterns))
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(steps):
        images, labels = data.batch(batch_size)
        logits = head(backbone(images)[-1].mean(dim=(2, 3)))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# -- the measurement ----------------------------------------------------------
def _pair_norm(a: Tensor, b: Tensor) -> Tensor:
    return torch.sqrt(a.square().sum() + b.square().sum())


@torch.no_grad()
def unit_errors(backbone: nn.Module, images: Tensor) -> List[float]:
    """Relative error of rebuilding each unit's input from its output.

    Runs in training mode with frozen running statistics (batch statistics,
    as the reversible backward does); the model's buffers are unchanged.
    """
    from mmrevode.models.reversible import frozen_running_stats
    was_training = backbone.training
    backbone.train()
    errors = []
    try:
        with frozen_running_stats(backbone):
            x = backbone.stem(images)
            for i, unit in enumerate(backbone.units):
                if i > 0:
                    x = backbone.transitions[i - 1](x)
                blocks = list(unit.blocks)
                a0, b0 = blocks[0].split(x)
                a, b = a0, b0
                for block in blocks:
                    a, b = block(a, b)
                x = blocks[-1].merge(a, b)
                for block in reversed(blocks):
                    a, b = block.inverse(a, b)
                error = _pair_norm(a - a0, b - b0) / _pair_norm(a0, b0)
                errors.append(error.item())
    finally:
        backbone.train(was_training)
    return errors


def measure(spec: dict,
            dtypes: Sequence[str] = ('float32', 'float64'),
            train_steps: int = 20,
            batch_size: int = 16,
            input_size: int = 32,
            lr: float = 0.05,
            backbone_options: Optional[dict] = None,
            seed: int = 0,
            progress=None) -> List[dict]:
    """Records of one model: initialised and trained, in every dtype."""
    progress = progress or (lambda: None)
    backbone = build_backbone(spec, backbone_options, seed)
    data = PatternData(input_size, seed=seed)
    images, _ = data.batch(batch_size)
    records = []
    for state in ('init', 'trained'):
        if state == 'trained':
            losses = train(backbone, data, train_steps, batch_size, lr)
            progress()
        else:
            losses = []
        for dtype in dtypes:
            model = backbone.to(getattr(torch, dtype))
            errors = unit_errors(model, images.to(getattr(torch, dtype)))
            records.append(
                dict(
                    name=spec['name'],
                    model=spec['model'],
                    arch=spec['arch'],
                    depth=spec['depth'],
                    blocks=spec['blocks'],
                    h=getattr(backbone, 'h', None),
                    state=state,
                    train_steps=train_steps if state == 'trained' else 0,
                    train_losses=losses,
                    dtype=dtype,
                    batch_size=batch_size,
                    input_size=input_size,
                    unit_errors=errors,
                    max_error=max(errors)))
            progress()
        backbone.float()
    return records


def run(specs: Sequence[str], progress_bar: bool = True, **kwargs) -> dict:
    """Measure every model; return the JSON document."""
    parsed = [parse_spec(s) for s in specs]
    dtypes = kwargs.get('dtypes', ('float32', 'float64'))
    bar = None
    if progress_bar:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(parsed) * (2 * len(dtypes) + 1))
    records = []
    for spec in parsed:
        records += measure(spec, progress=bar.update if bar else None,
                           **kwargs)
    if bar:
        print()
    return dict(torch=torch.__version__, records=records)


# -- output -------------------------------------------------------------------
def table(records: Sequence[dict]) -> str:
    """Worst-unit errors as a Markdown table: one row per model and dtype."""
    rows: Dict[tuple, dict] = {}
    for r in records:
        key = (r['name'], r['dtype'])
        rows.setdefault(key, dict(h=r['h']))[r['state']] = r['max_error']
    lines = [
        '| model | h | dtype | error at init | error after training |',
        '|---|---|---|---|---|'
    ]
    for (name, dtype), row in rows.items():
        lines.append(f"| {name} | {row['h']} | {dtype} | "
                     f"{row.get('init', math.nan):.1e} | "
                     f"{row.get('trained', math.nan):.1e} |")
    return '\n'.join(lines)


def plot(records: Sequence[dict], path: str, title: Optional[str] = None):
    """The worst unit's error against depth, init and trained side by side.

    Errors of exactly zero cannot be drawn on the log scale and are left
    out (the JSON file has them).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    styles = {'float32': '-', 'float64': '--'}
    markers = dict(HamiltonianNet='o', MidpointNet='s', LeapfrogNet='^')
    colors: Dict[str, str] = {}
    for ax, state in zip(axes, ('init', 'trained')):
        groups: Dict[tuple, List[dict]] = {}
        for r in records:
            if r['state'] == state:
                groups.setdefault((r['model'], r['dtype']), []).append(r)
        for (model, dtype), rows in groups.items():
            rows = sorted(rows, key=_x_value)
            pts = [(_x_value(r), r['max_error']) for r in rows
                   if r['max_error'] > 0 and math.isfinite(r['max_error'])]
            if not pts:
                continue
            if model not in colors:
                colors[model] = f'C{len(colors)}'
            ax.plot(*zip(*pts), styles.get(dtype, ':'),
                    marker=markers.get(model, 'x'), color=colors[model],
                    label=f'{model}, {dtype}')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('depth' if all(r['depth'] for r in records) else
                      'blocks')
        ax.set_title('at initialisation' if state == 'init' else
                     'after training steps')
        ax.grid(True, alpha=0.3, which='both')
    axes[0].set_ylabel('relative error of the rebuilt unit input\n'
                       '(worst unit)')
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _x_value(record: dict) -> float:
    return record['depth'] or sum(record['blocks'])


# -- command line -------------------------------------------------------------
def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Relative error of rebuilding each unit input from its '
        'output (forward, then inverse), in float32 and float64.')
    parser.add_argument(
        'models',
        nargs='+',
        help='TYPE:ARCH such as MidpointNet:182, or TYPE with '
        '--blocks-per-unit')
    parser.add_argument(
        '--blocks-per-unit',
        type=int,
        nargs='+',
        help='depth sweep: these numbers of blocks in every unit')
    parser.add_argument(
        '--widths', type=int, nargs='+', default=[32, 64, 128],
        help='unit widths of the depth sweep (default: 32 64 128)')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        choices=['float32', 'float64'],
        default=['float32', 'float64'])
    parser.add_argument(
        '--train-steps', type=int, default=20,
        help='SGD steps before the "trained" measurement (default 20)')
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--input-size', type=int, default=32)
    parser.add_argument(
        '--backbone-options',
        nargs='+',
        action=DictAction,
        help='override backbone arguments, e.g. h=0.05')
    parser.add_argument(
        '--threads', type=int, default=None,
        help='torch.set_num_threads (default: leave as is)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the records to this file')
    parser.add_argument('--plot', help='write the figure to this PNG file')
    parser.add_argument('--title', help='title of the figure')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    import json
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = args.models
    if args.blocks_per_unit:
        if any(':' in m for m in specs):
            raise SystemExit('--blocks-per-unit: give backbone types only '
                             '(e.g. MidpointNet), not TYPE:ARCH.')
        specs = [
            s for m in specs
            for s in sweep_specs(m, args.blocks_per_unit, args.widths)
        ]
    result = run(
        specs,
        progress_bar=not args.no_progress,
        dtypes=args.dtypes,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        input_size=args.input_size,
        lr=args.lr,
        backbone_options=args.backbone_options,
        seed=args.seed)
    print(table(result['records']))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'Wrote {args.json}')
    if args.plot:
        plot(result['records'], args.plot, args.title)
        print(f'Wrote {args.plot}')
    return result


if __name__ == '__main__':
    main()
