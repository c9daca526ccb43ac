# CIFAR-100 (fine labels), batch 100, augmentation as for CIFAR-10: the
# CIFAR-10 settings with CIFAR-100's data, statistics and top-5 accuracy.
_base_ = ['./cifar10_bs100.py']

dataset_type = 'CheckedCIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418])

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2, pad_val=(129, 124, 112)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_evaluator = dict(topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
