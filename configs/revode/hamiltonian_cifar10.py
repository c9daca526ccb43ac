_base_ = [
    '../_base_/models/hamiltonian74_cifar.py',
    '../_base_/datasets/cifar10_bs100.py',
    '../_base_/schedules/sgd_160e.py',
    '../_base_/default_runtime.py',
]
