# Baseline: RevNet-164 (Gomez et al.), with the data,
# schedule and runtime of the ODE networks.
_base_ = [
    '../_base_/models/revnet164_cifar.py',
    '../_base_/datasets/cifar100_bs100.py',
    '../_base_/schedules/sgd_160e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=100, topk=(1, 5)))
