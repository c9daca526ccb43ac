# scikit-learn's handwritten digits (1,797 images, 8x8 upsampled to 32x32,
# three channels), read from scikit-learn: no download, no data folder.
# A fixed stratified split: 1,347 training and 450 test images. The CIFAR
# augmentation without the flip (digits are not mirror-symmetric), padding
# with the background (0).
dataset_type = 'Digits'
data_preprocessor = dict(
    num_classes=10,
    # mean and standard deviation of the training images
    mean=[77.8, 77.8, 77.8],
    std=[82.5, 82.5, 82.5],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2, pad_val=0),
    dict(type='PackInputs'),
]
# the data set's samples hold arrays; an image file (MMPretrain's
# vis_cam.py) is read in RGB
test_pipeline = [dict(type='LoadImageIfMissing'), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=50,
    num_workers=0,
    # MMPretrain's tools/train.py defaults to persistent workers, which need
    # num_workers > 0
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=150,
    num_workers=0,
    # MMPretrain's tools/train.py defaults to persistent workers, which need
    # num_workers > 0
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
