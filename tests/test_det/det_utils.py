"""Helpers of the detection tests: the configs, a generated COCO-format data
set, a classification checkpoint in the format of tools/train.py, a tiny
config over them, and running a tool as a user does."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap
from collections import OrderedDict

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'revode', 'det')
DET_CONFIGS = [
    'retinanet_hamiltonian-det38_fpn_1x_coco.py',
    'faster-rcnn_hamiltonian-det38_fpn_1x_coco.py',
]
CLS_CONFIG = 'hamiltonian-det38_8xb32_in1k.py'
CLASSES = ('box', 'bar')


def config_path(name):
    return osp.join(CONFIG_DIR, name)


def make_coco(root, sizes=((128, 96), (96, 128), (128, 128), (112, 112)),
              seed=0):
    """Write a tiny COCO-format data set: ``root/images/*.png`` with one to
    three bright rectangles each, and ``root/annotations.json``.

    Returns the path of the annotation file.
    """
    import cv2

    rng = np.random.default_rng(seed)
    images, annotations = [], []
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    for image_id, (w, h) in enumerate(sizes, start=1):
        img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        for _ in range(rng.integers(1, 4)):
            label = int(rng.integers(0, len(CLASSES)))
            bw = int(rng.integers(16, w // 2))
            bh = bw if label == 0 else max(8, bw // 3)
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            img[y:y + bh, x:x + bw] = (200, 80 + 100 * label, 40)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label + 1,
                    bbox=[x, y, bw, bh],
                    area=bw * bh,
                    iscrowd=0))
        name = f'{image_id:06d}.png'
        cv2.imwrite(osp.join(root, 'images', name), img)
        images.append(dict(id=image_id, file_name=name, width=w, height=h))
    ann_file = osp.join(root, 'annotations.json')
    categories = [
        dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)
    ]
    with open(ann_file, 'w') as f:
        json.dump(
            dict(images=images, annotations=annotations,
                 categories=categories), f)
    return ann_file


def save_train_checkpoint(model, path):
    """Save ``model`` as tools/train.py (MMEngine's ``Runner``) does: meta,
    the state dict with the model's own key prefixes (``backbone.``,
    ``head.``), the message hub's state and the optimizer's."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    hub = MessageHub.get_instance('mmrevode_test_checkpoint')
    hub.update_scalar('train/loss', 2.5)
    hub.update_scalar('train/lr', 0.1)
    hub.update_info('epoch', 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    checkpoint = dict(
        meta=dict(
            epoch=1,
            iter=10,
            seed=0,
            experiment_name='hamiltonian-det38_8xb32_in1k',
            dataset_meta=dict(classes=('a', 'b'))),
        state_dict=weights_to_cpu(OrderedDict(model.state_dict())),
        message_hub=hub.state_dict(),
        optimizer=optimizer.state_dict(),
        param_schedulers=[])
    save_checkpoint(checkpoint, path)
    return path


def write_config(path, base, data_root, checkpoint):
    """A config that inherits ``base`` and only swaps in the small data
    set, the pre-trained checkpoint and a two-iteration schedule."""
    text = f'''
    _base_ = {base!r}
    data_root = {data_root + '/'!r}
    metainfo = dict(classes={CLASSES!r})
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor')),
    ]
    dataset = dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations.json', data_prefix=dict(img='images/'))
    train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        dataset=dict(**dataset, pipeline=train_pipeline))
    val_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        dataset=dict(**dataset, pipeline=test_pipeline))
    test_dataloader = val_dataloader
    val_evaluator = dict(ann_file=data_root + 'annotations.json')
    test_evaluator = val_evaluator

    model = dict(backbone=dict(init_cfg=dict(checkpoint={checkpoint!r})))
    train_cfg = dict(
        _delete_=True, type='IterBasedTrainLoop', max_iters=2,
        val_interval=2)
    param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=2)
    ]
    default_hooks = dict(
        logger=dict(interval=1),
        checkpoint=dict(by_epoch=False, interval=2))
    log_processor = dict(by_epoch=False)
    '''
    head = {
        'RetinaNet': '''
    model.update(
        bbox_head=dict(num_classes=2), test_cfg=dict(score_thr=0.0))
    ''',
        'FasterRCNN': '''
    model.update(
        roi_head=dict(bbox_head=dict(num_classes=2)),
        train_cfg=dict(rcnn=dict(sampler=dict(num=64))),
        test_cfg=dict(rcnn=dict(score_thr=0.0)))
    '''
    }['FasterRCNN' if 'faster' in osp.basename(base) else 'RetinaNet']
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text) + textwrap.dedent(head))
    return path


def run(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO, os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def mmdet_tool(name):
    """MMDetection's own tools/train.py or test.py, shipped in its wheel."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        pytest.skip(f'MMDetection ships no {name} here')
    return path
