"""Classify an image with a trained model, through MMPretrain's inferencer.

    python demo/image_demo.py IMAGE CONFIG --checkpoint CKPT \
        [--topk 5] [--show-dir DIR] [--image-size 32] [--device cpu] \
        [--cfg-options k=v ...]

Prints the ``--topk`` most probable classes with their scores. With
``--show-dir``, writes ``DIR/<image name>.png``: the image with the
predicted class and score drawn on it.

The checkpoint must fit the config's model, as for ``tools/test.py``: weights
of another model, or of another network (e.g. another step size ``h``, or a
Hamiltonian checkpoint with a Midpoint config), end with one message and
exit status 1. ``--random-weights`` instead of ``--checkpoint`` classifies
with an untrained model, every prediction line marked as such.

The data sets of the mmrevode configs hold RGB images and the configs do
not convert channels (``to_rgb=False``), so the image is read in RGB order.
The CIFAR and digits networks were trained on 32x32 images and their test
pipelines do not resize: for an image of another size a warning says so;
pass ``--image-size 32`` to resize it.
"""
import os.path as osp
import sys
import warnings
from argparse import ArgumentParser

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

import mmcv
import torch
from mmpretrain.apis import ImageClassificationInferencer, get_model

from mmrevode.engine.launcher import load_config, run_cli
from mmrevode.engine.options import merge_cfg_options
from mmrevode.utils.tools import (add_cfg_options_argument,
                                  class_names, config_image_size,
                                  load_fitting_checkpoint,
                                  parse_image_size)

#: Ends every prediction line of a model with random weights.
RANDOM_WEIGHTS_MARK = '  <- RANDOM WEIGHTS: untrained model, not a prediction'


def parse_args(argv=None):
    parser = ArgumentParser(description='Classify an image')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument(
        '--checkpoint', help='checkpoint file (must fit the config)')
    weights.add_argument(
        '--random-weights',
        action='store_true',
        help='classify with the untrained model of the config (every '
        'prediction line is marked)')
    parser.add_argument(
        '--topk', type=int, default=5, help='how many classes to print')
    parser.add_argument(
        '--show-dir',
        help='write the image with its prediction drawn as a PNG here')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        help='resize the image to this size (H W, or one number for a '
        'square) before classifying it')
    parser.add_argument(
        '--device', default='cpu', help='device used for inference')
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error('--topk must be positive.')
    if args.image_size is not None:
        try:
            args.image_size = parse_image_size(args.image_size)
        except ValueError as e:
            parser.error(f'--image-size: {e}')
    return args


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.img):
        print(f'Error: the image {args.img} does not exist.', file=sys.stderr)
        return 1
    image = mmcv.imread(args.img, channel_order='rgb')
    if image is None:
        print(f'Error: {args.img} could not be read as an image.',
              file=sys.stderr)
        return 1
    if args.image_size is not None:
        height, width = args.image_size
        image = mmcv.imresize(image, (width, height))
    return run_cli(lambda: classify(args, image))


def build_inferencer(args) -> ImageClassificationInferencer:
    """The config's classifier with the checkpoint's weights (checked), or
    with random weights for ``--random-weights``."""
    cfg = load_config(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    model = get_model(cfg, pretrained=False)
    classes = None
    if args.checkpoint:
        checkpoint = load_fitting_checkpoint(model, args.checkpoint)
        classes = class_names(cfg, checkpoint, model.head.num_classes,
                              args.checkpoint)
    return ImageClassificationInferencer(
        model, pretrained=False, device=args.device, classes=classes)


def warn_about_size(image, cfg, config: str) -> None:
    """One line when the image is not of the size the model works at and
    the test pipeline does not resize it."""
    size, resized = config_image_size(cfg)
    if size is None or resized or tuple(image.shape[:2]) == size:
        return
    print(f'Warning: the image is {image.shape[0]}x{image.shape[1]}, but '
          f'the model of {config} works at {size[0]}x{size[1]} and its test '
          'pipeline does not resize: pass --image-size '
          f'{size[0]} {size[1]} to resize it.', file=sys.stderr)


def classify(args, image) -> int:
    inferencer = build_inferencer(args)
    warn_about_size(image, inferencer.config, args.config)
    sample = inferencer(image, return_datasamples=True)[0]
    scores = sample.pred_score
    classes = inferencer.classes
    topk = min(args.topk, scores.numel())
    values, labels = torch.topk(scores, topk)
    mark = RANDOM_WEIGHTS_MARK if args.random_weights else ''
    print(f'{args.img}:{mark}')
    for rank, (score, label) in enumerate(zip(values.tolist(),
                                              labels.tolist()), 1):
        name = classes[label] if classes is not None else str(label)
        print(f'{rank:>3}. {name} (class {label}): {score:.4f}{mark}')
    if args.show_dir:
        out_file = osp.join(
            args.show_dir,
            osp.splitext(osp.basename(args.img))[0] + '.png')
        inferencer.visualizer = inferencer.visualizer or _visualizer()
        inferencer.visualizer.visualize_cls(
            image,
            sample,
            classes=classes,
            draw_gt=False,
            draw_pred=True,
            draw_score=True,
            rescale_factor=max(1., 256 / max(image.shape[:2])),
            out_file=out_file)
        print(f'The prediction drawn on the image: {out_file}'
              + (' (random weights)' if args.random_weights else ''))
    return 0


def _visualizer():
    from mmpretrain.visualization import UniversalVisualizer
    return UniversalVisualizer()


if __name__ == '__main__':
    sys.exit(main())
