"""Train a detector with MMDetection's runner; MMDetection's tools/train.py.

The arguments of MMDetection 3.3's ``tools/train.py`` (which pip does not
install) with the behaviour of this repository's ``tools/train.py``: CPU DDP
without GPUs, checked ``--cfg-options``, one run per work directory, and one
message with exit status 1 for mistakes a user can fix. Checkpoints load
without running code (``--trust-checkpoint`` for files you trust that need
more).

Example::

    python tools/det/train.py \\
        configs/revode/det/retinanet_hamiltonian-det38_fpn_1x_coco.py \\
        --cfg-options model.backbone.init_cfg.checkpoint=path/to/cls.pth

    # 8 GPUs
    torchrun --nproc_per_node=8 tools/det/train.py CONFIG --launcher pytorch
"""
import argparse
import sys
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.engine import launcher, options
from mmrevode.utils.optional import require_packages


def build_parser():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    options.add_train_arguments(parser)
    options.add_common_arguments(parser)
    return parser


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    launcher.configure(cfg, args, default_scope='mmdet')
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise options.LaunchError(
                '--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                'base_batch_size=...)` in the config.')
        cfg.auto_scale_lr.enable = True
    return cfg


def main(argv=None):
    args = options.parse_args(build_parser(), argv)
    require_packages('train.py', 'mmdet')
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    # fewer recompilations with compile=True
    setup_cache_size_limit_of_dynamo()
    return launcher.run_cli(lambda: launcher.train(
        merge_args(launcher.load_config(args.config), args), args.resume,
        args.cfg_options))


if __name__ == '__main__':
    sys.exit(main())
