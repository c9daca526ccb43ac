"""Test (and evaluate) a detector; MMDetection's tools/test.py.

The arguments of MMDetection 3.3's ``tools/test.py`` (which pip does not
install) with the behaviour of this repository's ``tools/test.py``: a
checkpoint whose weights do not fit the model is refused (``--partial-load``
to load what fits), checkpoints load without running code
(``--trust-checkpoint`` for files you trust that need more), and mistakes a
user can fix end with one message and exit status 1.

Example::

    python tools/det/test.py \\
        configs/revode/det/retinanet_hamiltonian-det38_fpn_1x_coco.py \\
        work_dirs/retinanet_hamiltonian-det38_fpn_1x_coco/epoch_12.pth \\
        --out results.pkl
"""
import argparse
import sys
import warnings
from copy import deepcopy

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmengine.config import ConfigDict

from mmrevode.engine import launcher, options
from mmrevode.utils.optional import require_packages


def build_parser():
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true')
    options.add_common_arguments(parser)
    return parser


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    launcher.configure(cfg, args, default_scope='mmdet')
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        if 'tta_model' not in cfg:
            warnings.warn('Cannot find ``tta_model`` in config, '
                          'we will set it as default.')
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(
                    nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        if 'tta_pipeline' not in cfg:
            warnings.warn('Cannot find ``tta_pipeline`` in config, '
                          'we will set it as default.')
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [
                        dict(type='RandomFlip', prob=1.),
                        dict(type='RandomFlip', prob=0.)
                    ],
                    [
                        dict(
                            type='PackDetInputs',
                            meta_keys=('img_id', 'img_path', 'ori_shape',
                                       'img_shape', 'scale_factor', 'flip',
                                       'flip_direction'))
                    ],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def main(argv=None):
    args = options.parse_args(build_parser(), argv)
    require_packages('test.py', 'mmdet')
    from mmdet.evaluation import DumpDetResults
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    # fewer recompilations with compile=True
    setup_cache_size_limit_of_dynamo()

    def test():
        cfg = merge_args(launcher.load_config(args.config), args)
        runner = launcher.build_runner(cfg)
        if args.out is not None:
            if not args.out.endswith(('.pkl', '.pickle')):
                raise options.LaunchError(
                    f'--out {args.out}: the predictions are written as a '
                    'pickle (.pkl or .pickle).')
            runner.test_evaluator.metrics.append(
                DumpDetResults(out_file_path=args.out))
        runner.test()

    return launcher.run_cli(test)


if __name__ == '__main__':
    sys.exit(main())
