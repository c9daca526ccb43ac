# RevNet-38 (Gomez et al. 2017): 3-3-3 basic blocks, widths 32-64-112,
# 0.48M parameters with a 10-class head.
# Same frame as the ODE networks (3x3 stem, average pooling and channel
# padding between units, final BN-ReLU), trained with the reversible backward.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RevNet',
        arch='38',
        out_indices=(2, ),
        mode='reversible'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=112,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ))
