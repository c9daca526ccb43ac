# STL-10 (96x96): the CIFAR network behind MMPretrain's ImageNet-style stem
# (7x7 convolution with stride 2, BN, ReLU, 3x3 max pooling with stride 2),
# so the three units run at 24x24, 12x12 and 6x6.
_base_ = [
    '../_base_/models/leapfrog62_cifar.py',
    '../_base_/datasets/stl10_bs100.py',
    '../_base_/schedules/sgd_160e.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(stem_type='imagenet'))
