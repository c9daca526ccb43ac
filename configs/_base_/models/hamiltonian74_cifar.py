# Hamiltonian-74: 6 blocks per unit, widths 32-64-112;
# step size h: the backbone's default.
# Head as in the paper: BN, ReLU (the backbone's out_norm), global average
# pooling, fully connected.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='HamiltonianNet', arch='74', out_indices=(-1, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=112,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
