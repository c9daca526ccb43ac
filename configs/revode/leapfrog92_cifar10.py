_base_ = './leapfrog_cifar10.py'

model = dict(backbone=dict(arch='92'))
