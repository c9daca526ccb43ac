# STL-10 (5000 labelled training images, 8000 test images, 96x96), batch
# 100. Augmentation scaled from CIFAR's: 6-pixel padding (1/16 of the side),
# random 96x96 crop, horizontal flip; per-channel normalisation with the
# usual STL-10 statistics, padding with the mean colour.
dataset_type = 'STL10'
data_root = 'data/stl10'
data_preprocessor = dict(
    num_classes=10,
    mean=[113.9, 112.2, 103.7],
    std=[66.4, 65.4, 69.2],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=96, padding=6, pad_val=(114, 112, 104)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# the data set's samples hold arrays; an image file (MMPretrain's
# vis_cam.py) is read in RGB
test_pipeline = [dict(type='LoadImageIfMissing'), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=100,
    num_workers=2,
    # every epoch's augmentations a function of (seed, epoch, worker), so a
    # resumed run draws what an uninterrupted one does (EpochSeedHook)
    persistent_workers=False,
    worker_init_fn=dict(type='seed_worker_by_epoch'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
