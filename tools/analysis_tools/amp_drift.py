"""Mixed precision and the reversible backward: how far the gradients move.

For each backbone, one training step is run from the same weights with the
reversible and with the plain backward, each in float32 and under
``torch.autocast`` (bfloat16 on CPU, float16 on CUDA by default), and the
relative distances of the gradients are reported (the metrics are defined in
:mod:`mmrevode.analysis.amp`). Each figure is the largest over ``--seeds``
initialisations. Models are specs ``TYPE[:ARCH]`` with a preset name or a
dict literal (``"HamiltonianNet:{'blocks': [2, 2], 'widths': [8, 16]}"``).
The tool prints a table (the columns of docs/distributed.md) and writes
``OUT_DIR/NAME.json`` and a bar chart, ``OUT_DIR/NAME.png``; a progress bar
(a task per model and seed) goes to stderr (``--no-progress``: none).

Example::

    python tools/analysis_tools/amp_drift.py HamiltonianNet:38 \\
        MidpointNet:62 LeapfrogNet:62 --batch-size 32
"""
import sys
import warnings

import torch

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.analysis import AMP_METRICS, worst_amp_drift
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (Progress, add_output_arguments,
                                   add_run_arguments, markdown_table,
                                   model_parser, model_specs, new_figure,
                                   save_figure, write_outputs)
from mmrevode.utils.optional import require_packages

#: The column of each metric, as in docs/distributed.md.
COLUMNS = dict(
    amp_drift='bf16 vs fp32, plain autograd (the AMP drift)',
    rev_amp='bf16 reversible vs fp32 plain',
    rev_vs_plain_amp='bf16 reversible vs bf16 plain',
    rev_vs_plain_fp32='fp32 reversible vs fp32 plain',
    out_drift='output, bf16 vs fp32')


def parse_args(argv=None):
    parser = model_parser(__doc__.split('\n')[0])
    add_run_arguments(parser, batch_size=16, progress_bar=True, device=True)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument(
        '--dtype',
        choices=['bfloat16', 'float16'],
        help='autocast dtype; bfloat16 on CPU, float16 on CUDA by default')
    add_output_arguments(parser, 'amp_drift')
    return cli.parse_args(parser, argv)


def columns(dtype: str) -> dict:
    short = 'bf16' if dtype == 'bfloat16' else 'fp16'
    return {k: v.replace('bf16', short) for k, v in COLUMNS.items()}


def plot(results: dict, dtype: str, path: str) -> None:
    """One group of bars per model, one bar per metric, log scale."""
    fig, ax = new_figure(figsize=(max(6, 2 * len(results)), 4))
    names = list(results)
    width = 0.8 / len(AMP_METRICS)
    for i, (key, label) in enumerate(columns(dtype).items()):
        ax.bar([n + (i - len(AMP_METRICS) / 2 + 0.5) * width
                for n in range(len(names))],
               [max(results[name][key], 1e-12) for name in names],
               width, label=label)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_yscale('log')
    ax.set_ylabel('relative gradient distance')
    ax.legend(fontsize='small')
    save_figure(fig, path, title=f'Mixed precision ({dtype}) and the '
                'reversible backward')


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print(f'Error: --device {args.device}: this machine has no GPU; use '
              '--device cpu (bfloat16 autocast).', file=sys.stderr)
        return None
    require_packages('amp_drift.py', 'matplotlib')
    dtype = args.dtype or ('float16' if args.device != 'cpu' else 'bfloat16')
    print(f'device {args.device}, autocast dtype {dtype}, batch '
          f'{args.batch_size}, {args.input_size}x{args.input_size}, max over '
          f'{args.seeds} seeds', flush=True)
    specs = model_specs(args)
    progress = Progress(len(specs) * args.seeds, not args.no_progress)
    results = {}
    for spec in specs:
        results[spec] = worst_amp_drift(
            spec,
            seeds=args.seeds,
            device=args.device,
            backbone_options=args.backbone_options,
            progress=progress.update,
            batch_size=args.batch_size,
            input_size=args.input_size,
            dtype=getattr(torch, args.dtype) if args.dtype else None)
    progress.close()
    print(markdown_table(
        ['model'] + list(columns(dtype).values()),
        [[spec] + [f'{worst[k]:.1e}' for k in AMP_METRICS]
         for spec, worst in results.items()]))
    write_outputs(args, dict(dtype=dtype, models=results),
                  lambda path: plot(results, dtype, path))
    return results


if __name__ == '__main__':
    sys.exit(0 if main() is not None else 1)
