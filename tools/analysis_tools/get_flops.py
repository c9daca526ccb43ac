"""FLOPs and parameters of a config's model, per module, as MMPretrain's
tools/analysis_tools/get_flops.py prints them.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]

Counts with MMEngine's FLOP counter (fvcore's, the one behind
``mmengine.analysis.get_model_complexity_info``) one forward of the
classifier's feature extractor (backbone and neck, as MMPretrain's tool
does; ``--with-head`` adds the head) on a 1 x C x H x W input in eval mode,
and prints the model with the counts of each module, the table of the
counts by module depth (``--max-depth``) and the totals.
FLOPs count one multiply-add as one, as fvcore does.
"""
import argparse
import sys
import warnings
from functools import partial

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

import torch
from mmengine.analysis import (ActivationAnalyzer, FlopAnalyzer,
                               parameter_count)
from mmengine.analysis.print_helper import (_format_size,
                                            complexity_stats_str,
                                            complexity_stats_table)

from mmrevode.engine.launcher import run_cli
from mmrevode.utils.tools import (add_input_arguments, build_from_config,
                                  parse_input_arguments)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Get model FLOPs and params')
    parser.add_argument('config', help='config file path')
    add_input_arguments(parser, 'input image size')
    parser.add_argument(
        '--max-depth',
        type=int,
        default=3,
        help='depth of the modules in the table (default 3)')
    parser.add_argument(
        '--with-head',
        action='store_true',
        help='count the head too (the logits), not only backbone and neck')
    parser.add_argument(
        '--no-arch',
        action='store_true',
        help='do not print the model with the counts of every module')
    return parse_input_arguments(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    return run_cli(lambda: count(args))


def count(args):
    _, model = build_from_config(args.config, args.cfg_options)
    if not hasattr(model, 'extract_feat'):
        print('Error: FLOPs counting needs a classifier with extract_feat, '
              f'not a {type(model).__name__}.', file=sys.stderr)
        return 1
    model.eval()
    if args.with_head:
        model.forward = partial(model.forward, mode='tensor')
    else:
        model.forward = model.extract_feat
    in_channels = getattr(model.backbone, 'in_channels', 3)
    input_shape = (in_channels, *args.shape)
    inputs = (torch.randn(1, *input_shape), )

    flops = FlopAnalyzer(model, inputs)
    # The Midpoint layers apply their convolution's weight through
    # F.conv2d (as K - K^T), so the convolution module itself is never
    # called; its FLOPs are counted in the layer.
    flops.uncalled_modules_warnings(False)
    activations = ActivationAnalyzer(model, inputs)
    activations.uncalled_modules_warnings(False)
    activations.unsupported_ops_warnings(False)
    if not args.no_arch:
        print('\n' + complexity_stats_str(flops, activations))
    print('\n' + complexity_stats_table(
        flops,
        max_depth=args.max_depth,
        activations=activations,
        show_param_shapes=True))
    split_line = '=' * 30
    print(f'{split_line}\nInput shape: {input_shape}\n'
          f'Flops: {_format_size(flops.total())}\n'
          f'Params: {_format_size(parameter_count(model)[""])}\n'
          f'Activation: {_format_size(activations.total())}\n{split_line}')
    print('FLOPs of the ' + ('whole classifier' if args.with_head else
                             'backbone and neck') +
          ', counting a multiply-add as one; element-wise operations (the '
          'shift steps\' additions and scalings), pooling and padding are '
          'not counted.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
