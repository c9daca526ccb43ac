# ResNet-56 for CIFAR (He et al. 2016): ResNet-32's layout with 9-9-9 basic
# blocks, 0.85M parameters with a 10-class head.
_base_ = './resnet32_cifar.py'
model = dict(backbone=dict(depth=56))
