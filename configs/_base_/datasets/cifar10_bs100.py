# CIFAR-10, batch 100, the authors' augmentation: 2-pixel padding, random
# 32x32 crop, horizontal flip. Normalisation is per channel (MMPretrain's
# CIFAR statistics) instead of the authors' per-pixel mean image; the padding
# value is the mean colour, i.e. zero after normalisation.
dataset_type = 'CheckedCIFAR10'
data_root = 'data/cifar10'
data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    # the images are RGB already
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2, pad_val=(125, 123, 114)),
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
        # set to False to read your own data in the CIFAR format
        verify_md5=True,
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
        verify_md5=True,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
