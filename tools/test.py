"""Evaluate a checkpoint on the test set of a config, as MMPretrain's tool.

    python tools/test.py configs/revode/hamiltonian_cifar10.py \
        work_dirs/hamiltonian_cifar10/epoch_160.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl  # predictions
    python tools/test.py CONFIG CHECKPOINT --out m.json --out-item metrics
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES

The metrics are logged and, at the end, printed one per line
(``accuracy/top1: 93.1200``). A checkpoint whose weights do not fit the
model is refused (``--partial-load`` to load what fits on purpose); this and
other mistakes a user can fix end the run with one message and exit status 1.
"""
import argparse
import sys
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

import mmengine
from mmengine.evaluator import DumpResults

from mmrevode.engine import launcher, options


def build_parser():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='the file to write the results to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='write the metrics or the predictions (default) to --out')
    parser.add_argument(
        '--amp', action='store_true', help='test with mixed precision')
    options.add_loader_arguments(parser, persistent_workers=False)
    options.add_common_arguments(parser)
    return parser


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    cfg.load_from = args.checkpoint
    # only evaluate: the model is loaded, not resumed
    cfg.resume = False
    if args.amp:
        cfg.test_cfg.fp16 = True
    launcher.configure(cfg, args)
    launcher.apply_dataloader_defaults(cfg, ('test_dataloader', ), args)
    return cfg


def main(argv=None):
    parser = build_parser()
    args = options.parse_args(parser, argv)
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')

    def test():
        cfg = merge_args(launcher.load_config(args.config), args)
        runner = launcher.build_runner(cfg)
        if args.out and args.out_item in ('pred', None):
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        metrics = runner.test()
        if args.out and args.out_item == 'metrics':
            mmengine.dump(metrics, args.out)
        if runner.rank == 0:
            for name, value in metrics.items():
                print(f'{name}: {value:.4f}' if isinstance(value, float) else
                      f'{name}: {value}')

    return launcher.run_cli(test)


if __name__ == '__main__':
    sys.exit(main())
