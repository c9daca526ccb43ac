# ResNet-110 for CIFAR (He et al. 2016): ResNet-32's layout with 18-18-18
# basic blocks, 1.73M parameters with a 10-class head.
_base_ = './resnet32_cifar.py'
model = dict(backbone=dict(depth=110))
