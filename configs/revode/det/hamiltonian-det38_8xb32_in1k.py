# ImageNet-1k pre-training of the detection backbone HamiltonianNet 'det-38'.
#
# The backbone is the one of the detection configs in this folder: ImageNet
# stem (7x7/2 convolution, 3x3/2 max pooling), four reversible units of widths
# 64-128-256-512 at strides 4, 8, 16, 32. Train it with
#
#   python tools/train.py configs/revode/det/hamiltonian-det38_8xb32_in1k.py
#
# and the last checkpoint, work_dirs/hamiltonian-det38_8xb32_in1k/epoch_100.pth,
# is what the detection configs' `pretrained` points to: they load its
# 'backbone.' weights (`init_cfg=dict(type='Pretrained', prefix='backbone.')`).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='HamiltonianNet',
        arch='det-38',
        stem_type='imagenet',
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0001))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)

# `auto_scale_lr` scales the learning rate to the actual total batch size
# (here 8 GPUs x 32 images) when training with `--auto-scale-lr`.
auto_scale_lr = dict(base_batch_size=256)
