"""How exactly a unit's input is rebuilt from its output, per scheme and depth.

For every unit of each model, the blocks run forward from the unit's real
input and are then all inverted; the error is the relative distance of the
rebuilt pair from the one the unit started from (see
:mod:`mmrevode.analysis.reconstruction`). Each model is measured in float32
and float64, at initialisation and after a few SGD steps on a small
synthetic classification task.

Models are specs ``TYPE[:ARCH]`` (``MidpointNet:182``, ``"HamiltonianNet:{
'blocks': [4, 4, 4], 'widths': [32, 64, 128]}"``) or ``TYPE`` with
``--blocks-per-unit`` for a depth sweep. The tool prints a table and writes
``OUT_DIR/NAME.json`` (one record per model, state and dtype, with the error
of every unit) and ``OUT_DIR/NAME.png`` (the worst unit's error against
depth, one line per scheme and dtype, initialised and trained side by side).

Example::

    python tools/analysis_tools/reconstruction_error.py HamiltonianNet \\
        MidpointNet LeapfrogNet --blocks-per-unit 1 4 16 64 \\
        --out-dir docs/figures --name reconstruction_error
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.analysis import run_reconstruction
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (add_output_arguments, add_run_arguments,
                                   depth_axis, markdown_table, model_parser,
                                   model_specs, new_figure, save_figure,
                                   write_outputs)
from mmrevode.utils.optional import require_packages


def table(records: Sequence[dict]) -> str:
    """Worst-unit errors as a Markdown table: one row per model and dtype."""
    rows: Dict[tuple, dict] = {}
    for r in records:
        key = (r['name'], r['dtype'])
        rows.setdefault(key, dict(h=r['h']))[r['state']] = r['max_error']
    return markdown_table(
        ['model', 'h', 'dtype', 'error at init', 'error after training'],
        [[
            name, row['h'], dtype, f"{row.get('init', math.nan):.1e}",
            f"{row.get('trained', math.nan):.1e}"
        ] for (name, dtype), row in rows.items()])


def plot(records: Sequence[dict], path: str, title: Optional[str] = None):
    """The worst unit's error against depth, init and trained side by side.

    Errors of exactly zero cannot be drawn on the log scale and are left
    out (the JSON file has them).
    """
    fig, axes = new_figure(1, 2, figsize=(11, 4.2), sharey=True)
    styles = {'float32': '-', 'float64': '--'}
    markers = dict(HamiltonianNet='o', MidpointNet='s', LeapfrogNet='^')
    colors: Dict[str, str] = {}
    _, xlabel = depth_axis(records)
    for ax, state in zip(axes, ('init', 'trained')):
        groups: Dict[tuple, List[dict]] = {}
        for r in records:
            if r['state'] == state:
                groups.setdefault((r['model'], r['dtype']), []).append(r)
        for (model, dtype), rows in groups.items():
            pts = sorted(
                (x, r['max_error'])
                for x, r in zip(depth_axis(rows)[0], rows)
                if r['max_error'] > 0 and math.isfinite(r['max_error']))
            if not pts:
                continue
            if model not in colors:
                colors[model] = f'C{len(colors)}'
            ax.plot(*zip(*pts), styles.get(dtype, ':'),
                    marker=markers.get(model, 'x'), color=colors[model],
                    label=f'{model}, {dtype}')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel(xlabel)
        ax.set_title('at initialisation' if state == 'init' else
                     'after training steps')
        ax.grid(True, alpha=0.3, which='both')
    axes[0].set_ylabel('relative error of the rebuilt unit input\n'
                       '(worst unit)')
    axes[0].legend(fontsize=8)
    save_figure(fig, path, title)


def parse_args(argv=None):
    parser = model_parser(
        'Relative error of rebuilding each unit input from its output '
        '(forward, then inverse), in float32 and float64.')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        choices=['float32', 'float64'],
        default=['float32', 'float64'])
    parser.add_argument(
        '--train-steps', type=int, default=20,
        help='SGD steps before the "trained" measurement (default 20)')
    parser.add_argument('--lr', type=float, default=0.05)
    add_run_arguments(parser, batch_size=16, progress_bar=True)
    add_output_arguments(parser, 'reconstruction_error', title=True)
    return cli.parse_args(parser, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    require_packages('reconstruction_error.py', 'matplotlib')
    result = run_reconstruction(
        model_specs(args),
        progress_bar=not args.no_progress,
        dtypes=args.dtypes,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        input_size=args.input_size,
        lr=args.lr,
        backbone_options=args.backbone_options,
        seed=args.seed)
    records = result['records']
    print(table(records))
    write_outputs(args, result, lambda path: plot(records, path, args.title))
    return result


if __name__ == '__main__':
    main()
