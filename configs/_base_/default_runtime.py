# Runtime shared by all mmrevode configs.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmrevode'], allow_failed_imports=False)

default_hooks = dict(
    # record the time of every iteration
    timer=dict(type='IterTimerHook'),
    # log every 100 iterations
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint every epoch (the last 3 kept) and the best by top-1;
    # written to a temporary file and renamed, deleted only after a save
    # succeeded, never with non-finite weights; loaded checkpoints must fit
    # the model (see mmrevode.engine.SafeCheckpointHook)
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='accuracy/top1',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
custom_hooks = [
    # Seed the augmentations of every epoch from (seed, epoch), so a resumed
    # run matches an uninterrupted one (see EpochSeedHook).
    dict(type='EpochSeedHook'),
    # Stop at the first non-finite loss or gradient, before the step is
    # applied (action='skip' skips such steps instead).
    dict(type='DivergenceHook', action='stop'),
    # Every 10 iterations, one reversible unit (round robin) compares the
    # input pair its backward rebuilt with the forward's: in exact mode any
    # difference is an error, in floating point a relative error above 1e-4
    # a warning; logged as train/rebuild_error (see RebuildCheckHook).
    dict(type='RebuildCheckHook', interval=10, tolerance=1e-4),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when there is no GPU
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'

load_from = None
# `tools/train.py --resume` resumes from the last checkpoint of the work dir
resume = False
# a random seed (stored in the checkpoints) unless one is set here
randomness = dict(seed=None, deterministic=False)
