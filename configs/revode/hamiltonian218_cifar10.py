_base_ = './hamiltonian_cifar10.py'

model = dict(backbone=dict(arch='218'), head=dict(in_channels=128))
