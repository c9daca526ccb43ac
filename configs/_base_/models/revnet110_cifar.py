# RevNet-110 (Gomez et al. 2017): 9-9-9 basic blocks, widths 32-64-128,
# 1.75M parameters with a 10-class head.
# Same frame as the ODE networks (3x3 stem, average pooling and channel
# padding between units, final BN-ReLU), trained with the reversible backward.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RevNet',
        arch='110',
        out_indices=(2, ),
        mode='reversible'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ))
