# ImageNet-1k pre-training of the detection backbone HamiltonianNet 'det-38'
# (MMPretrain's ResNet-50 recipe: 8 GPUs x 32 images, SGD, 100 epochs).
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
#
# The config is self-contained (no 'mmpretrain::' base configs, which MMEngine
# resolves with pkg_resources), so it also runs where setuptools is recent.
custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)
default_scope = 'mmpretrain'

# model settings
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

# dataset settings (as MMPretrain's _base_/datasets/imagenet_bs32.py); the
# mean and std are those of MMDetection's DetDataPreprocessor as well
dataset_type = 'ImageNet'
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=5,
    # augmentations a function of (seed, epoch, worker): exact resumption
    persistent_workers=False,
    worker_init_fn=dict(type='seed_worker_by_epoch'),
    dataset=dict(
        type=dataset_type,
        data_root='data/imagenet',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=32,
    num_workers=5,
    dataset=dict(
        type=dataset_type,
        data_root='data/imagenet',
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# schedule
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0001))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# With `--auto-scale-lr`, the learning rate follows the actual total batch
# size (here 8 GPUs x 32 images).
auto_scale_lr = dict(base_batch_size=256)

# runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # safe saves, no non-finite weights saved, loaded weights must fit
    checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
custom_hooks = [dict(type='EpochSeedHook'), dict(type='DivergenceHook')]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
