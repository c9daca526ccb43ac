"""The base of the backbones here: the network a checkpoint holds is the
network that is built."""
import logging
import re
from typing import Any, Dict, List, Optional, Tuple

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner import CheckpointLoader
from mmengine.runner.checkpoint import load_state_dict
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import Tensor

from ...engine.definition import (DEFINITION_KEY, UNREADABLE,
                                  MissingDefinitionError,
                                  NetworkMismatchError, decode_definition,
                                  definition_differences, encode_definition,
                                  holds_weights, mismatch_message,
                                  missing_message, plain_data, show_value)

#: Norm types that build the same network (they differ in training only).
BATCH_NORM_TYPES = ('BN', 'BN2d', 'SyncBN', 'MMSyncBN', 'naiveSyncBN')
#: Norm and activation arguments that change training, not the network.
TRAINING_ONLY_ARGS = ('requires_grad', 'momentum', 'inplace')
#: The arguments of ``init_cfg=dict(type='Pretrained', ...)`` here.
PRETRAINED_ARGS = ('checkpoint', 'prefix', 'map_location', 'partial')


def norm_definition(norm_cfg: Optional[dict]) -> Optional[dict]:
    """What of a norm config defines the network: the type (every batch
    norm, synchronised or not, as ``'BN'``), ``eps`` (1e-5 when not given,
    the default of every norm layer) and any other argument except
    :data:`TRAINING_ONLY_ARGS`."""
    if norm_cfg is None:
        return None
    result = {
        k: v
        for k, v in plain_data(norm_cfg, 'norm_cfg').items()
        if k not in TRAINING_ONLY_ARGS
    }
    if result.get('type') in BATCH_NORM_TYPES:
        result['type'] = 'BN'
    result['eps'] = float(result.get('eps', 1e-5))
    return result


def act_definition(act_cfg: Optional[dict]) -> Optional[dict]:
    """What of an activation config defines the network: everything but
    ``inplace``."""
    if act_cfg is None:
        return None
    return {
        k: v
        for k, v in plain_data(act_cfg, 'act_cfg').items()
        if k not in TRAINING_ONLY_ARGS
    }


class DefinedBackbone(BaseBackbone):
    """A backbone whose checkpoints record the network they belong to.

    :meth:`definition` lists everything that defines the network but is not
    a weight (the step size ``h``, ``arch``, the scheme's options, norm type,
    activation, stem, ...; not the execution ``mode`` and not what only
    training uses, such as ``frozen_stages``, ``norm_eval`` or
    ``init_cfg``). It is saved as torch's extra state of the module
    (``backbone._extra_state`` in a classifier's ``state_dict``: the plain
    data as JSON in a ``uint8`` tensor, which TorchScript tracing and
    ``torch.load(weights_only=True)`` take as any weight), and every load
    compares it with the network that was built, whichever way the weights
    come (``tools/test.py``, ``--resume``, ``load_from``, ``Pretrained``,
    ``model.load_state_dict``, MMEngine's ``load_checkpoint``):

    - a different definition raises
      :class:`~mmrevode.engine.NetworkMismatchError`, naming each differing
      key with both values and the config key to set;
    - a checkpoint that holds the backbone's weights but no definition
      (written before definitions were recorded) raises
      :class:`~mmrevode.engine.MissingDefinitionError`, which names the
      converter ``tools/model_converters/add_definition.py``;
    - with ``check_definition=False`` both are logged as warnings and the
      weights are loaded into this network on purpose.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` is
    loaded by :meth:`load_pretrained`: weights that do not fit stop with one
    error instead of MMEngine's warning; add ``partial=True`` to the dict to
    load the weights that fit.

    A subclass extends :meth:`definition` with its own options. A new
    constructor option that changes the network goes into
    :meth:`definition`; if checkpoints without it exist, its former value
    goes into :attr:`unrecorded_defaults`.

    Args:
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
        check_definition (bool): Refuse checkpoints trained as another
            network or recording none. False loads them into this network
            with a warning, e.g. to evaluate a checkpoint at another step
            size on purpose. Defaults to True.
    """
    #: Definition keys that checkpoints written before the key existed lack,
    #: with the value every network had then: such a checkpoint is compared
    #: as if it recorded that value.
    unrecorded_defaults: Dict[str, Any] = {}
    #: Prefixes of weights that a ``Pretrained`` checkpoint of the same
    #: network may lack or have in excess (e.g. the norms of outputs that the
    #: pre-trained model did not return); they keep their initialisation.
    optional_pretrained_keys: Tuple[str, ...] = ()

    def __init__(self, init_cfg=None, check_definition: bool = True):
        super().__init__(init_cfg=init_cfg)
        self.check_definition = check_definition

    @property
    def check_definition(self) -> bool:
        """Whether loading refuses a checkpoint of another network or
        recording none (else it warns)."""
        return self._check_definition

    @check_definition.setter
    def check_definition(self, check_definition: bool):
        if not isinstance(check_definition, bool):
            raise TypeError(f'{type(self).__name__}: check_definition must '
                            f'be a bool, got {check_definition!r}.')
        self._check_definition = check_definition

    # -- the definition -------------------------------------------------------
    def definition(self) -> Dict[str, Any]:
        """What defines the network besides its weights, as plain data.

        Keys are the constructor arguments (``model.backbone.KEY`` in a
        config), values as the network uses them (a preset ``arch`` as its
        blocks and widths, ``h`` as a float). Subclasses extend the dict.

        Returns:
            dict: ``{'type': class name, ...}``.
        """
        return dict(type=type(self).__name__)

    def get_extra_state(self) -> Tensor:
        """The :meth:`definition`, saved in the ``state_dict`` (as JSON in
        a ``uint8`` tensor, :func:`~mmrevode.engine.definition.
        encode_definition`)."""
        return encode_definition(self.definition())

    def set_extra_state(self, state: Any) -> None:
        """Check a loaded definition against this network (see
        :meth:`check_saved_definition`)."""
        self.check_saved_definition(state)

    def definition_differences(self, saved: Any) -> Optional[list]:
        """How a checkpoint's definition ``saved`` differs from this
        network's: ``[(key, saved value, built value), ...]`` (empty if
        they agree; see
        :func:`~mmrevode.engine.definition.definition_differences`), or None
        if ``saved`` is None (no definition recorded)."""
        if saved is None:
            return None
        saved = decode_definition(saved)
        if not isinstance(saved, dict) or not all(
                isinstance(k, str) for k in saved):
            saved = dict(type=UNREADABLE)  # differs as a whole
        return definition_differences(saved, plain_data(self.definition()),
                                      self.unrecorded_defaults)

    def definition_error(self,
                         saved: Any,
                         path: str = '') -> Optional[NetworkMismatchError]:
        """The error a checkpoint recording ``saved`` gives, or None.

        Args:
            saved: The checkpoint's definition; None if it records none.
            path (str): The checkpoint, named in the message.
                Defaults to ''.

        Returns:
            NetworkMismatchError | None: None if the definitions agree or
            ``check_definition`` is off.
        """
        if not self.check_definition:
            return None
        differences = self.definition_differences(saved)
        if differences is None:
            return MissingDefinitionError(
                missing_message(type(self).__name__, path))
        if differences:
            return NetworkMismatchError(mismatch_message(differences, path))
        return None

    def check_saved_definition(self, saved: Any, path: str = '') -> None:
        """Raise :meth:`definition_error`; with ``check_definition=False``
        log a warning instead."""
        error = self.definition_error(saved, path)
        if error is not None:
            raise error
        warning = self._loaded_anyway(saved, path, 'check_definition=False')
        if warning:
            print_log(warning, logger='current', level=logging.WARNING)

    def _loaded_anyway(self, saved: Any, path: str, reason: str) -> str:
        """The warning for weights loaded into this network although their
        definition differs or is not recorded ('' if it agrees)."""
        differences = self.definition_differences(saved)
        what = f'the checkpoint {path}' if path else 'the checkpoint'
        if differences is None:
            return (f'{type(self).__name__}: loading {what}, which records '
                    f'no definition, unchecked ({reason}).')
        if not differences:
            return ''
        trained = ', '.join(
            f'{k}={show_value(v)}' for k, v, _ in differences)
        return (f'{type(self).__name__}: {what} was trained with {trained}; '
                f'loading its weights into this different network on '
                f'purpose ({reason}).')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Before any weight is loaded: torch calls set_extra_state only for
        # a recorded definition.
        key = prefix + DEFINITION_KEY
        recorded = key in state_dict
        if not recorded and holds_weights(state_dict, prefix, self):
            self.check_saved_definition(None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if not recorded and not self.check_definition and \
                key in missing_keys:
            missing_keys.remove(key)

    # -- initialisation -------------------------------------------------------
    def init_weights(self) -> None:
        """MMEngine's initialisation, then :meth:`init_own_weights`; a
        ``Pretrained`` entry of ``init_cfg`` is loaded last, by
        :meth:`load_pretrained` (checked, instead of MMEngine's
        ``PretrainedInit``)."""
        if self.is_init:
            super().init_weights()  # MMEngine warns and does nothing
            return
        init_cfg = self.init_cfg
        init_cfgs = [init_cfg] if isinstance(init_cfg, dict) else init_cfg
        pretrained = [
            cfg for cfg in init_cfgs or []
            if cfg.get('type') in ('Pretrained', PretrainedInit)
        ]
        if pretrained:
            others = [cfg for cfg in init_cfgs if cfg not in pretrained]
            self.init_cfg = others or None
            try:
                super().init_weights()
            finally:
                self.init_cfg = init_cfg
        else:
            super().init_weights()
        self.init_own_weights()
        for cfg in pretrained:
            args = {k: v for k, v in cfg.items() if k != 'type'}
            unknown = sorted(set(args) - set(PRETRAINED_ARGS))
            if unknown or 'checkpoint' not in args:
                raise ValueError(
                    f'{type(self).__name__}: init_cfg Pretrained takes '
                    f'{", ".join(PRETRAINED_ARGS)} (checkpoint required), '
                    f'got {sorted(args)}.')
            self.load_pretrained(**args)

    def init_own_weights(self) -> None:
        """Initialisation beyond ``init_cfg``, after its initialisers and
        before ``Pretrained`` weights are loaded. Does nothing here."""

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu',
                        partial: bool = False) -> None:
        """Load a checkpoint's weights (``init_cfg=dict(type='Pretrained',
        ...)``), through MMEngine's :class:`CheckpointLoader` (for local
        files the project's safe loader).

        The weights must fit (same keys and shapes, finite; the keys of
        :attr:`optional_pretrained_keys` may be missing or in excess) and
        the definition must be this network's, else one error stops the
        run: :class:`~mmrevode.engine.CheckpointMismatchError` or
        :class:`~mmrevode.engine.NetworkMismatchError`.

        Args:
            checkpoint (str): Path or URL of the checkpoint.
            prefix (str, optional): Load the weights under this prefix, e.g.
                ``'backbone.'`` for a classifier's checkpoint. Defaults to
                None (the checkpoint is the backbone's).
            map_location (str): As in :func:`torch.load`.
                Defaults to ``'cpu'``.
            partial (bool): Load the weights that fit (same name and shape)
                into this network and log the rest, whatever the
                definition. Defaults to False.
        """
        from ...engine.checkpoint_fit import check_checkpoint_fits
        name = type(self).__name__
        source = f'{name} (init_cfg Pretrained' + (
            f', prefix {prefix!r})' if prefix else ')')
        print_log(f'{source}: loading {checkpoint}', logger='current')
        loaded = CheckpointLoader.load_checkpoint(
            checkpoint, map_location=map_location)
        state = loaded.get('state_dict', loaded) \
            if isinstance(loaded, dict) else {}
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
        if prefix:
            start = prefix if prefix.endswith('.') else prefix + '.'
            state = {
                k[len(start):]: v
                for k, v in state.items() if k.startswith(start)
            }
        hint = (' Check the checkpoint and the prefix; to load the weights '
                'that fit on purpose, add partial=True to the Pretrained '
                'init_cfg.')
        if not prefix and any(k.startswith('backbone.') for k in state):
            hint = (" Its keys start with 'backbone.': add "
                    "prefix='backbone.' to the Pretrained init_cfg.")
        if partial:
            self._load_partially(state, checkpoint, source)
        else:
            check_checkpoint_fits(
                self, dict(state_dict=state), checkpoint, source, hint=hint,
                optional=self.optional_pretrained_keys)
            own = self.state_dict()
            kept = sorted({
                k.rsplit('.', 1)[0]
                for k in own if k not in state and k != DEFINITION_KEY
            })
            if kept:
                print_log(
                    f'{source}: {", ".join(kept)} keep their initial values '
                    '(not in the checkpoint).',
                    logger='current',
                    level=logging.WARNING)
            state = {k: v for k, v in state.items() if k in own}
            self.load_state_dict(state, strict=False)
        if hasattr(self, '_params_init_info'):
            update_init_info(
                self, init_info=f'PretrainedInit: load from {checkpoint}')

    def _load_partially(self, state: dict, checkpoint: str,
                        source: str) -> None:
        """Load what fits of ``state``; log the definition's differences
        and what does not fit."""
        warning = self._loaded_anyway(
            state.get(DEFINITION_KEY), checkpoint, 'partial=True')
        if warning:
            print_log(warning, logger='current', level=logging.WARNING)
        own = self.state_dict()
        skipped: List[str] = [
            k for k, v in state.items()
            if k in own and k != DEFINITION_KEY and hasattr(v, 'shape')
            and hasattr(own[k], 'shape') and v.shape != own[k].shape
        ]
        state = {k: v for k, v in state.items() if k not in skipped}
        # the weights go into this network, whatever the checkpoint's was
        state[DEFINITION_KEY] = self.get_extra_state()
        if skipped:
            print_log(f'{source}: not loaded (other shapes): '
                      f'{", ".join(skipped)}', logger='current',
                      level=logging.WARNING)
        load_state_dict(self, state, strict=False, logger='current')
