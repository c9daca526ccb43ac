"""Mixed precision and the reversible backward: how far the gradients move.

For each backbone, one training step is run from the same weights with the
reversible and with the plain backward, each in float32 and under
``torch.autocast`` (bfloat16 on CPU, float16 on CUDA by default), and the
relative distances of the gradients are reported (the metrics are defined in
:mod:`mmrevode.analysis.amp`). Each figure is the largest over ``--seeds``
initialisations. Models are specs ``TYPE[:ARCH]`` with a preset name or a
dict literal (``"HamiltonianNet:{'blocks': [2, 2], 'widths': [8, 16]}"``).
The tool prints a table and writes ``OUT_DIR/NAME.json``.

Example::

    python tools/analysis_tools/amp_drift.py HamiltonianNet:38 \\
        MidpointNet:62 LeapfrogNet:62 --batch-size 32
"""
import torch

from mmrevode.analysis import AMP_METRICS, worst_amp_drift
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (add_output_arguments, add_run_arguments,
                                   model_parser, model_specs, write_json)


def parse_args(argv=None):
    parser = model_parser(__doc__.split('\n')[0])
    add_run_arguments(parser, batch_size=16, device=True)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument(
        '--dtype',
        choices=['bfloat16', 'float16'],
        help='autocast dtype; bfloat16 on CPU, float16 on CUDA by default')
    add_output_arguments(parser, 'amp_drift')
    return cli.parse_args(parser, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    dtype = args.dtype or ('float16' if args.device != 'cpu' else 'bfloat16')
    print(f'device {args.device}, autocast dtype {dtype}, batch '
          f'{args.batch_size}, {args.input_size}x{args.input_size}, max over '
          f'{args.seeds} seeds')
    print('| model | ' + ' | '.join(AMP_METRICS) + ' |')
    print('|---' * (len(AMP_METRICS) + 1) + '|')
    results = {}
    for spec in model_specs(args):
        results[spec] = worst = worst_amp_drift(
            spec,
            seeds=args.seeds,
            device=args.device,
            backbone_options=args.backbone_options,
            batch_size=args.batch_size,
            input_size=args.input_size,
            dtype=getattr(torch, args.dtype) if args.dtype else None)
        print(f'| {spec} | ' + ' | '.join(f'{worst[k]:.1e}'
                                          for k in AMP_METRICS) + ' |')
    print(f'Wrote {write_json(args, dict(dtype=dtype, models=results))}')
    return results


if __name__ == '__main__':
    main()
