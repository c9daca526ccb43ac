# Midpoint-62: 10 blocks per unit, widths 32-64-128;
# step size h: the backbone's default.
# Head as in the paper: BN, ReLU (the backbone's out_norm), global average
# pooling, fully connected.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MidpointNet', arch='62', out_indices=(-1, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
