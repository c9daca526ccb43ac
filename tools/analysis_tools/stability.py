"""Forward and backward stability of a backbone along its depth.

For each model, freshly initialised or loaded from a checkpoint, the tool
measures the norms of the state and of the gradient after every block of
every unit (forward and backward propagation) and the eigenvalues of the
Jacobian of one block's right-hand side (see
:mod:`mmrevode.analysis.stability`), and writes ``OUT_DIR/NAME.png`` (three
panels, all models overlaid) and ``OUT_DIR/NAME.json`` with every number.

Models are config files (the config's ``model.backbone`` is built) or specs
``TYPE[:ARCH]`` (``HamiltonianNet:74``, ``RevNet:164``, ``CifarResNet:56``;
the arch may also be a dict literal,
``"RevNet:{'blocks': [2, 2], 'widths': [8, 16]}"``).

Example::

    python tools/analysis_tools/stability.py HamiltonianNet:110 \\
        LeapfrogNet:92 RevNet:110 CifarResNet:110 --out-dir work_dirs/stab

    # Midpoint-92 at h = 0.02, the others at their default h
    python tools/analysis_tools/stability.py HamiltonianNet:110 \\
        MidpointNet:92 --h MidpointNet:92=0.02

Every backbone takes ``--backbone-options`` (e.g. ``h=0.05``); one model's
step size is set with ``--h MODEL=VALUE`` (the model named as given, e.g.
``--h MidpointNet:92=0.02``; repeatable). ``--cfg-options`` changes config
files only: with a spec among the models it is refused. A progress bar goes
to stderr (``--no-progress``: none); the summary lines go to stdout.

Checkpoints are read by the safe loader (no code runs) and must fit the
model exactly.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import Dict, Optional, Sequence

import numpy as np
import torch

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.analysis import analyse_stability, build_backbone, model_spec
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (Progress, add_output_arguments,
                                   add_run_arguments, model_parser,
                                   new_figure, output_path, save_figure,
                                   write_json)
from mmrevode.engine.launcher import run_cli
from mmrevode.utils.optional import require_packages
from mmrevode.utils.tools import add_cfg_options_argument


def legend_label(result: dict) -> str:
    """A model's name in the legend, with its step size where it has one."""
    h = result.get('h')
    return result['name'] + (f', h={h:g}' if h is not None else '')


def plot(results: Sequence[dict], path: str, title: Optional[str] = None):
    """Write the three panels of ``results`` (from
    :func:`~mmrevode.analysis.analyse_stability`, each with a ``name``) to
    ``path``."""
    import matplotlib

    fig, axes = new_figure(1, 3, figsize=(17, 5.2))
    colors = matplotlib.rcParams['axes.prop_cycle'].by_key()['color']
    for k, result in enumerate(results):
        color = colors[k % len(colors)]
        for key, ax in (('state_ratio', axes[0]), ('grad_ratio', axes[1])):
            for i, unit in enumerate(result['units']):
                values = unit[key]
                depth = i + np.arange(len(values)) / (len(values) - 1)
                ax.plot(
                    depth,
                    values,
                    color=color,
                    marker='.' if len(values) <= 20 else None,
                    label=legend_label(result) if i == 0 else None)
        jac = result['jacobian']
        radius = jac['spectral_radius'] or 1.0
        axes[2].scatter(
            np.asarray(jac['eig_real']) / radius,
            np.asarray(jac['eig_imag']) / radius,
            s=8,
            color=color,
            alpha=0.6,
            label=f"{jac['block_type']}, rho={radius:.3g}")
    num_units = max(len(r['units']) for r in results)
    for ax, label in ((axes[0], 'state norm / unit input'),
                      (axes[1], 'gradient norm / unit output')):
        ax.set_yscale('log')
        ax.set_xlabel('depth (unit + fraction of its blocks)')
        ax.set_ylabel(label)
        for boundary in range(1, num_units):
            ax.axvline(boundary, color='0.8', lw=0.8, zorder=0)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].set_title('Forward propagation')
    axes[1].set_title('Backward propagation')
    axes[2].set_title('Eigenvalues of one block\'s right-hand side')
    axes[2].axvline(0, color='0.5', lw=0.8)
    axes[2].axhline(0, color='0.5', lw=0.8)
    axes[2].set_xlabel('Re(lambda) / rho')
    axes[2].set_ylabel('Im(lambda) / rho')
    axes[2].set_xlim(-1.1, 1.1)
    axes[2].set_ylim(-1.1, 1.1)
    axes[2].set_aspect('equal')
    axes[2].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc='lower center',
        ncol=min(len(labels), 6),
        fontsize=8,
        frameon=False)
    save_figure(fig, path, title, dpi=120, rect=(0, 0.07, 1, 1))


def summary(result: dict) -> str:
    """One line: growth per unit forward and backward, and the spectrum."""
    units = result['units']
    forward = ', '.join(f'{u["state_ratio"][-1]:.3g}' for u in units)
    backward = ', '.join(f'{u["grad_ratio"][0]:.3g}' for u in units)
    jac = result['jacobian']
    return (f'{result.get("name", result["backbone"])}: state norm x '
            f'[{forward}] and gradient norm x [{backward}] across each unit;'
            f' {jac["block_type"]} right-hand side: max|Re|/rho = '
            f'{jac["real_to_radius"]:.2e} (rho = {jac["spectral_radius"]:.3g}'
            f', n = {jac["dim"]})')


def parse_step_sizes(parser: argparse.ArgumentParser,
                     entries: Optional[Sequence[str]],
                     models: Sequence[str]) -> Dict[str, float]:
    """``--h MODEL=VALUE ...`` as ``{model: h}``; every MODEL must be one
    of ``models`` as given on the command line."""
    step_sizes = {}
    for entry in entries or []:
        model, sep, value = entry.rpartition('=')
        if not sep or not model:
            parser.error(f'--h {entry}: give MODEL=VALUE, e.g. '
                         'MidpointNet:92=0.02.')
        if model not in models:
            parser.error(f'--h {entry}: {model} is not one of the models '
                         f'({", ".join(models)}); name it as given.')
        try:
            step_sizes[model] = float(value)
        except ValueError:
            parser.error(f'--h {entry}: {value!r} is not a number.')
    return step_sizes


def parse_args(argv=None):
    parser = model_parser(
        'State and gradient norms along the depth of a backbone and the '
        'spectrum of one block\'s right-hand side.',
        sweep=False,
        configs=True)
    parser.add_argument(
        '--h',
        nargs='+',
        action='extend',
        metavar='MODEL=VALUE',
        help='the step size h of one model, named as given (e.g. '
        'MidpointNet:92=0.02); repeat for others. It overrides '
        '--backbone-options h=... and the config\'s for that model')
    parser.add_argument(
        '--checkpoint',
        nargs='+',
        default=None,
        help='one checkpoint per model ("none" for a fresh initialisation)')
    add_cfg_options_argument(parser)
    add_run_arguments(parser, batch_size=8, progress_bar=True)
    parser.add_argument(
        '--mode',
        choices=['train', 'eval'],
        default=None,
        help='norms with batch (train) or running (eval) statistics; '
        'defaults to eval with a checkpoint, train without')
    parser.add_argument(
        '--jac-unit', type=int, default=0, help='unit of the block')
    parser.add_argument(
        '--jac-block', type=int, default=0, help='block within the unit')
    parser.add_argument(
        '--jac-size',
        type=int,
        default=4,
        help='spatial size of the state the Jacobian is taken at (the '
        'matrix has (channels x size^2)^2 entries)')
    add_output_arguments(parser, 'stability')
    args = cli.parse_args(parser, argv)
    specs = [m for m in args.models
             if not (m.endswith('.py') or osp.isfile(m))]
    if args.cfg_options and specs:
        parser.error(f'--cfg-options changes config files, and {specs[0]} '
                     'is a spec: give its arguments with --backbone-options '
                     '(every model) or --h MODEL=VALUE (one model).')
    args.h = parse_step_sizes(parser, args.h, args.models)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    checkpoints = args.checkpoint or [None] * len(args.models)
    if len(checkpoints) != len(args.models):
        raise SystemExit(f'--checkpoint: got {len(checkpoints)} for '
                         f'{len(args.models)} models ("none" for none).')
    require_packages('stability.py', 'matplotlib')
    torch.manual_seed(args.seed)
    results = []
    progress = Progress(2 * len(args.models), not args.no_progress)
    for model, checkpoint in zip(args.models, checkpoints):
        if checkpoint is not None and checkpoint.lower() == 'none':
            checkpoint = None
        spec = model_spec(model, args.cfg_options)
        options = dict(args.backbone_options or {})
        if model in args.h:
            options['h'] = args.h[model]
        backbone = build_backbone(spec, options, checkpoint)
        mode = args.mode or ('eval' if checkpoint else 'train')
        result = analyse_stability(backbone, args.batch_size,
                                   args.input_size, mode, args.jac_unit,
                                   args.jac_block, args.jac_size, args.seed,
                                   progress.update)
        result.update(name=spec['name'], model=model, checkpoint=checkpoint,
                      h=getattr(backbone, 'h', None))
        results.append(result)
    progress.close()
    for result in results:
        print(summary(result))
    json_path = write_json(args, dict(models=results))
    png_path = output_path(args, 'png')
    plot(results, png_path,
         title='Stability at ' + ('initialisation' if not any(
             r['checkpoint'] for r in results) else 'the given checkpoints'))
    print(f'Wrote {png_path} and {json_path}')
    return dict(models=results, png=png_path, json=json_path)


if __name__ == '__main__':
    # a missing or unfitting checkpoint: one line, exit status 1
    sys.exit(run_cli(lambda: main() and 0))
