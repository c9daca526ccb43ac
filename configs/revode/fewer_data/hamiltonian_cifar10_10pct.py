_base_ = './hamiltonian_cifar10_subset.py'

train_dataloader = dict(dataset=dict(fraction=0.1))
