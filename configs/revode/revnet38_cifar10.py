# Baseline: RevNet-38 (Gomez et al.), with the data,
# schedule and runtime of the ODE networks.
_base_ = [
    '../_base_/models/revnet38_cifar.py',
    '../_base_/datasets/cifar10_bs100.py',
    '../_base_/schedules/sgd_160e.py',
    '../_base_/default_runtime.py',
]
