_base_ = './midpoint_cifar10.py'

model = dict(backbone=dict(arch='92'))
