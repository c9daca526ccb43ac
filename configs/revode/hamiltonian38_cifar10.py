_base_ = './hamiltonian_cifar10.py'

model = dict(backbone=dict(arch='38'), head=dict(in_channels=112))
