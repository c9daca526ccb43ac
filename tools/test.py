"""Evaluate a checkpoint on the test set of a config, as MMPretrain's tool.

    python tools/test.py configs/revode/hamiltonian_cifar10.py \
        work_dirs/hamiltonian_cifar10/epoch_160.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl  # predictions
    python tools/test.py CONFIG CHECKPOINT --out m.json --out-item metrics
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES

The metrics are logged and, at the end, printed one per line
(``accuracy/top1: 93.1200``). Missing data and unreadable checkpoints end
the run with a one-paragraph message and exit status 1.
"""
import argparse
import os
import os.path as osp
import sys
from copy import deepcopy

try:
    import mmrevode  # noqa: F401
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmrevode  # noqa: F401

import mmengine
import torch
from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmrevode.datasets import DatasetError
from mmrevode.engine import CheckpointError, setup_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the logs and the metrics')
    parser.add_argument('--out', help='the file to write the results to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='write the metrics or the predictions (default) to --out')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs merged '
        'into it, e.g. test_dataloader.batch_size=64; lists as key="[a,b]" '
        'or key=a,b; quotes needed, no white space')
    parser.add_argument(
        '--amp', action='store_true', help='test with mixed precision')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the data loader')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')
    return args


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    # only evaluate: the model is loaded, not resumed
    cfg.resume = False
    if args.amp:
        cfg.test_cfg.fp16 = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if cfg.get('test_dataloader', None) is not None:
        loader = deepcopy(cfg.test_dataloader)
        loader.setdefault('pin_memory', torch.cuda.is_available())
        loader.setdefault('collate_fn', dict(type='default_collate'))
        if args.no_pin_memory:
            loader['pin_memory'] = False
        if loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
        cfg.test_dataloader = loader
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    try:
        setup_distributed(cfg)
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        if args.out and args.out_item in ('pred', None):
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        metrics = runner.test()
    except (DatasetError, CheckpointError) as e:
        print(f'\nError: {e}', file=sys.stderr)
        return 1
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    if runner.rank == 0:
        for name, value in metrics.items():
            print(f'{name}: {value:.4f}' if isinstance(value, float) else
                  f'{name}: {value}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
