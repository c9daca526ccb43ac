"""Export a classifier to ONNX and check it in onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT \
        --output-file model.onnx [--shape H W] [--dynamic-export]

Builds the config's classifier, loads the checkpoint (as ``tools/test.py``
does), exports backbone, neck and head (the logits, before softmax) with the
input the config's data preprocessor produces (normalised images), then runs
the ONNX model in onnxruntime on the same random input and prints the
largest difference from PyTorch. Exits with status 1 when the difference,
relative to the largest logit, exceeds ``--tolerance``. With
``--dynamic-export`` the batch size, height and width are dynamic, and the
check also runs on a second input of another batch size and twice the size.

It needs onnx and onnxruntime (onnxscript with ``--dynamo``):
``pip install -e ".[deploy]"``.
"""
import argparse
import sys
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.engine.launcher import run_cli
from mmrevode.utils.optional import require_packages
from mmrevode.utils.onnx_export import (ClassifierLogits,
                                        compare_with_onnxruntime,
                                        example_inputs, export_onnx)
from mmrevode.utils.tools import (add_input_arguments, build_from_config,
                                  load_fitting_checkpoint,
                                  parse_input_arguments)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a classifier to ONNX and check it in '
        'onnxruntime')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--output-file', default='tmp.onnx', help='the ONNX file to write')
    add_input_arguments(parser, 'input size')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='batch of the export')
    parser.add_argument(
        '--dynamic-export',
        action='store_true',
        help='export with dynamic batch size, height and width')
    parser.add_argument(
        '--opset-version', type=int, default=None,
        help='ONNX opset (default: the exporter\'s)')
    parser.add_argument(
        '--dynamo',
        action='store_true',
        help='use the exporter based on torch.export (needs onnxscript) '
        'instead of the TorchScript-based one MMDeploy uses')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest allowed difference between ONNX and PyTorch, '
        'relative to the largest logit (default 1e-4)')
    args = parse_input_arguments(parser, argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be positive.')
    return args


def main(argv=None):
    args = parse_args(argv)
    require_packages('pytorch2onnx.py', 'onnx', 'onnxruntime',
                     *(['onnxscript'] if args.dynamo else []))
    return run_cli(lambda: export(args))


def export(args):
    _, model = build_from_config(args.config, args.cfg_options)
    load_fitting_checkpoint(model, args.checkpoint)
    module = ClassifierLogits(model).eval()
    in_channels = getattr(model.backbone, 'in_channels', 3)
    inputs = example_inputs(args.shape, args.batch_size, in_channels,
                            args.dynamic_export)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export_onnx(
            module,
            inputs[0],
            args.output_file,
            dynamic=args.dynamic_export,
            opset_version=args.opset_version,
            dynamo=args.dynamo)
    dynamic = ', dynamic' if args.dynamic_export else ''
    print(f'Exported {args.output_file} (input: normalised images '
          f'{tuple(inputs[0].shape)}{dynamic}; output: logits)')
    worst = 0.0
    for images in inputs:
        diff = compare_with_onnxruntime(module, args.output_file, images)
        worst = max(worst, diff['rel_diff'])
        print(f'input {tuple(images.shape)}: largest difference from '
              f'PyTorch {diff["max_abs_diff"]:.3g} (largest logit '
              f'{diff["max_abs"]:.3g}, relative {diff["rel_diff"]:.3g})')
    if worst > args.tolerance:
        print(
            f'\nError: the ONNX model differs from PyTorch by {worst:.3g} '
            f'(relative), more than --tolerance {args.tolerance:g}.',
            file=sys.stderr)
        return 1
    print(f'ONNX and PyTorch agree within {args.tolerance:g}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
