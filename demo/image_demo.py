"""Classify an image with a trained model, through MMPretrain's inferencer.

    python demo/image_demo.py IMAGE CONFIG --checkpoint CKPT \
        [--topk 5] [--show-dir DIR] [--image-size 32] [--device cpu]

Prints the ``--topk`` most probable classes with their scores. With
``--show-dir``, writes ``DIR/<image name>.png``: the image with the
predicted class and score drawn on it.

The data sets of the mmrevode configs hold RGB images and the configs do
not convert channels (``to_rgb=False``), so the image is read in RGB order.
The CIFAR and digits networks were trained on 32x32 images: pass
``--image-size 32`` for images of another size.
"""
import os.path as osp
import sys
from argparse import ArgumentParser

try:
    import mmrevode  # noqa: F401
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmrevode  # noqa: F401

import mmcv
import torch
from mmpretrain.apis import ImageClassificationInferencer

from mmrevode.engine import CheckpointError
from mmrevode.utils.tools import parse_image_size


def parse_args(argv=None):
    parser = ArgumentParser(description='Classify an image')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint file')
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
    try:
        inferencer = ImageClassificationInferencer(
            args.config,
            pretrained=args.checkpoint or False,
            device=args.device)
    except CheckpointError as e:
        print(f'\nError: {e}', file=sys.stderr)
        return 1
    sample = inferencer(image, return_datasamples=True)[0]
    scores = sample.pred_score
    classes = inferencer.classes
    topk = min(args.topk, scores.numel())
    values, labels = torch.topk(scores, topk)
    print(f'{args.img}:')
    for rank, (score, label) in enumerate(zip(values.tolist(),
                                              labels.tolist()), 1):
        name = classes[label] if classes is not None else str(label)
        print(f'{rank:>3}. {name} (class {label}): {score:.4f}')
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
        print(f'The prediction drawn on the image: {out_file}')
    return 0


def _visualizer():
    from mmpretrain.visualization import UniversalVisualizer
    return UniversalVisualizer()


if __name__ == '__main__':
    sys.exit(main())
