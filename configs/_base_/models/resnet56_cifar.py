# ResNet-56 for CIFAR (He et al. 2016, section 4.2): 3x3 stem with 16
# channels, 9-9-9 basic blocks at 16-32-64 channels, option-A (zero-padding)
# shortcuts, 0.85M parameters with a 10-class head. This is mmrevode's
# `CifarResNet`, not MMPretrain's `ResNet_CIFAR` (an ImageNet-width ResNet).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CifarResNet',
        depth=56,
        shortcut='A',
        out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ))
