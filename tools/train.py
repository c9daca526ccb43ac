"""Train a model from a config file, as MMPretrain's tools/train.py does.

    python tools/train.py configs/revode/hamiltonian_cifar10.py
    python tools/train.py CONFIG --resume            # from the last checkpoint
    python tools/train.py CONFIG --resume PATH.pth   # from a given checkpoint
    bash tools/dist_train.sh CONFIG NUM_PROCESSES    # distributed (torchrun)

Distributed runs without GPUs use the gloo backend and CPU DDP
(``mmrevode.engine.setup_distributed``). Missing data and unreadable
checkpoints end the run with a one-paragraph message and exit status 1.
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

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmrevode.datasets import DatasetError
from mmrevode.engine import CheckpointError, setup_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        '`auto_scale_lr.base_batch_size` of the config')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the data loaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the data loaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs merged '
        'into it, e.g. train_dataloader.batch_size=64 '
        'model.backbone.reversible=False; lists as key="[a,b]" or key=a,b; '
        'quotes needed, no white space')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _dataloader_defaults(cfg, field, args):
    """Defaults of MMPretrain's tools, valid for this machine and config."""
    if cfg.get(field, None) is None:
        return
    loader = deepcopy(cfg[field])
    workers = loader.get('num_workers', 0)
    # pinning only helps (and only works quietly) with a GPU; persistent
    # workers need workers
    loader.setdefault('pin_memory', torch.cuda.is_available())
    loader.setdefault('persistent_workers', workers > 0)
    loader.setdefault('collate_fn', dict(type='default_collate'))
    if args.no_pin_memory:
        loader['pin_memory'] = False
    if args.no_persistent_workers or workers == 0:
        loader['persistent_workers'] = False
    cfg[field] = loader


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr') is None:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict('
                             'base_batch_size=...)` in the config.')
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        _dataloader_defaults(cfg, field, args)
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
        runner.train()
    except (DatasetError, CheckpointError) as e:
        print(f'\nError: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
