"""Train a model from a config file, as MMPretrain's tools/train.py does.

    python tools/train.py configs/revode/hamiltonian_cifar10.py
    python tools/train.py CONFIG --resume            # from the last checkpoint
    python tools/train.py CONFIG --resume PATH.pth   # from a given checkpoint
    bash tools/dist_train.sh CONFIG NUM_PROCESSES    # distributed (torchrun)

Mistakes a user can fix (a missing config, an unknown ``--cfg-options`` key,
missing data, an unusable checkpoint, a diverged run, a work directory in use
by another run) end the run with one message and exit status 1. See
``mmrevode.engine.launcher``.
"""
import argparse
import sys
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.engine import launcher, options


def build_parser():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    options.add_train_arguments(parser)
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    options.add_loader_arguments(parser)
    options.add_common_arguments(parser)
    return parser


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr') is None:
            raise options.LaunchError(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config.')
        cfg.auto_scale_lr.enable = True
    launcher.configure(cfg, args)
    launcher.apply_dataloader_defaults(
        cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'), args)
    return cfg


def main(argv=None):
    args = options.parse_args(build_parser(), argv)
    return launcher.run_cli(lambda: launcher.train(
        merge_args(launcher.load_config(args.config), args), args.resume,
        args.cfg_options))


if __name__ == '__main__':
    sys.exit(main())
