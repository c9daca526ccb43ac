# RetinaNet with FPN on COCO, HamiltonianNet 'det-38' backbone (widths
# 64-128-256-512 at strides 4-8-16-32; the last three feed the FPN), 1x
# schedule (12 epochs, 8 GPUs x 2 images).
#
# The backbone starts from an ImageNet classification checkpoint made by this
# repository's tools/train.py (see hamiltonian-det38_8xb32_in1k.py): its
# 'backbone.' weights are loaded by `init_cfg=dict(type='Pretrained', ...,
# prefix='backbone.')`. Set `pretrained` below to your checkpoint
# or override it on the command line:
#
#   python tools/det/train.py configs/revode/det/retinanet_hamiltonian-det38_fpn_1x_coco.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=path/to/epoch_100.pth
#
# Checkpoints are loaded as weights only (no code runs); a checkpoint that
# needs more is refused unless you pass --trust-checkpoint for a file you trust.
# To train from scratch instead (PyTorch's default initialisation), pass
#   --cfg-options model.backbone.init_cfg=None model.backbone.frozen_stages=-1 \
#       model.backbone.norm_eval=False
# and train longer.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)

# MMEngine's CheckpointHook (same arguments) with saves that cannot destroy
# earlier checkpoints, no non-finite weights saved and loaded weights that
# must fit the model; a stop at the first non-finite loss or gradient.
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))
custom_hooks = [dict(type='DivergenceHook')]

pretrained = 'work_dirs/hamiltonian-det38_8xb32_in1k/epoch_100.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.HamiltonianNet',
        arch='det-38',
        stem_type='imagenet',
        # RetinaNet's FPN starts at stride 8: the stride-4 output would be a
        # branch without gradients (and an error under DDP), so it is not
        # returned.
        out_indices=(1, 2, 3),
        # The stem and the first unit keep their pre-trained weights, and all
        # batch norms their pre-trained statistics, as for ResNet in MMDet.
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        # The memory-efficient backward: activations inside a unit are
        # rebuilt instead of stored. False gives plain autograd (same
        # weights, outputs and gradients).
        mode='reversible',
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    # Widths of units 1-3 (strides 8, 16, 32); P6 and P7 come from extra
    # convolutions on the stride-32 map, as for ResNet.
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))

optim_wrapper = dict(
    type='GuardedOptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
