"""An unpickler that builds data and nothing else.

Python's unpickler calls whatever the file names: a global it imports, a
``__reduce__`` callable, a ``__setstate__`` method, ``append``/``extend`` of
whatever object is on its stack. Refusing a list of dangerous names is not
enough: harmless-looking allowed names have been chained into code
execution. :class:`RecordUnpickler` is safe by construction instead:

- a global is looked up in a fixed table (:attr:`RecordUnpickler.globals`)
  and never imported; the table maps each name the supported files use to a
  *record builder*: a function of ours that checks its arguments and builds
  plain data, or a :class:`Record` type that stands in for a foreign class,
  or a constant (a marker, a dtype);
- ``REDUCE`` calls only the builder functions of that table (by identity);
- ``NEWOBJ`` creates only :class:`Record` types, without arguments;
- ``BUILD`` (``__setstate__``) is applied only to :class:`Record` instances,
  through their own :meth:`Record.build`, which checks the state and returns
  the real object; that object then replaces the record on the stack and in
  the memo; a real class's ``__setstate__`` is never called;
- ``APPEND(S)``, ``SETITEM(S)`` and ``ADDITEMS`` change only builtin
  containers that the file itself built (lists, dicts, sets), whose keys
  must be strings, bytes or small ints (:func:`check_key`: no keys chosen
  to collide);
- opcodes that call anything else (``INST``, ``OBJ``, ``NEWOBJ_EX``, the
  extension registry, out-of-band buffers) are refused.

So nothing reachable while loading calls a function the file chose, and
nothing changes beyond the objects being built: no class attribute, no
module, no shared object.
"""
import io
import pickle
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, Tuple


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for something outside the table of what it may build."""


class Record:
    """Stands in for an object of a foreign class while a file is read.

    ``NEWOBJ`` (or a builder) creates the record; ``BUILD`` passes the
    pickled state to :meth:`build`, which checks it and returns the real
    object built through the class's public constructor.
    """

    def build(self, state: Any) -> Any:
        raise UnsafePickleError(
            f'{type(self).__name__} takes no pickled state')


#: Containers that ``APPEND``/``SETITEM``/``ADDITEMS`` may fill.
_LISTS = (list, )
_DICTS = (dict, OrderedDict, Counter)
_SETS = (set, )

#: Opcodes that would call or import something outside the table.
_REFUSED_OPCODES = {
    pickle.INST: 'INST',
    pickle.OBJ: 'OBJ',
    pickle.NEWOBJ_EX: 'NEWOBJ_EX',
    pickle.EXT1: 'EXT1',
    pickle.EXT2: 'EXT2',
    pickle.EXT4: 'EXT4',
    pickle.NEXT_BUFFER: 'NEXT_BUFFER',
    pickle.READONLY_BUFFER: 'READONLY_BUFFER',
}

#: Python 2 module names of pickles written with ``fix_imports``.
_PY2_MODULES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}


def _refuse(name: str) -> Callable:

    def refuse(self):
        raise UnsafePickleError(f'the pickle opcode {name}, which calls '
                                'code or is not supported')

    return refuse


def _restricted_dispatch() -> Dict[int, Callable]:
    dispatch = dict(pickle._Unpickler.dispatch)
    for code in range(256):
        if code not in dispatch:
            dispatch[code] = _refuse(f'0x{code:02x}')
    for opcode, name in _REFUSED_OPCODES.items():
        dispatch[opcode[0]] = _refuse(name)
    dispatch[pickle.REDUCE[0]] = RecordUnpickler.load_reduce
    dispatch[pickle.NEWOBJ[0]] = RecordUnpickler.load_newobj
    dispatch[pickle.BUILD[0]] = RecordUnpickler.load_build
    dispatch[pickle.APPEND[0]] = RecordUnpickler.load_append
    dispatch[pickle.APPENDS[0]] = RecordUnpickler.load_appends
    dispatch[pickle.SETITEM[0]] = RecordUnpickler.load_setitem
    dispatch[pickle.SETITEMS[0]] = RecordUnpickler.load_setitems
    dispatch[pickle.ADDITEMS[0]] = RecordUnpickler.load_additems
    dispatch[pickle.DICT[0]] = RecordUnpickler.load_dict
    dispatch[pickle.FROZENSET[0]] = RecordUnpickler.load_frozenset
    dispatch[pickle.PUT[0]] = RecordUnpickler.load_put
    dispatch[pickle.BINPUT[0]] = RecordUnpickler.load_binput
    dispatch[pickle.LONG_BINPUT[0]] = RecordUnpickler.load_long_binput
    dispatch[pickle.MEMOIZE[0]] = RecordUnpickler.load_memoize
    return dispatch


class RecordUnpickler(pickle._Unpickler):
    """Unpickle plain data and the records of :attr:`globals`.

    A subclass sets :attr:`globals`, a mapping from ``(module, name)`` to a
    record builder (a function that checks its arguments) or a
    :class:`Record` type; its builders are the only callables the file can
    reach. See the module docstring for what each opcode may do.

    Args:
        file: A binary file object.
        **kwargs: As for :class:`pickle.Unpickler` (``encoding``, ...).
    """
    #: ``(module, name) -> builder or Record type``.
    globals: Dict[Tuple[str, str], Any] = {}

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._record_keys: Dict[int, list] = {}
        # REDUCE calls builder functions; NEWOBJ creates Record types.
        self._callables = {
            id(value): value
            for value in self.globals.values()
            if callable(value) and not isinstance(value, type)
        }
        self._record_types = {
            id(value): value
            for value in self.globals.values()
            if isinstance(value, type) and issubclass(value, Record)
        }

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise UnsafePickleError('a global named by non-strings')
        module = _PY2_MODULES.get(module, module)
        try:
            return self.globals[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f'the global `{module}.{name}`, which files of this kind do '
                'not hold') from None

    # -- opcodes that call: only the table's builders ------------------------
    def _check_callable(self, func: Any, opcode: str) -> None:
        if self._callables.get(id(func)) is not func:
            raise UnsafePickleError(
                f'a call ({opcode}) of {type(func).__name__} {func!r:.60}, '
                'which is not a builder of this file format')

    def load_reduce(self):
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        self._check_callable(func, 'REDUCE')
        if type(args) is not tuple:
            raise UnsafePickleError('a call (REDUCE) with arguments that '
                                    'are not a tuple')
        stack[-1] = func(*args)

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        if self._record_types.get(id(cls)) is not cls:
            raise UnsafePickleError(f'an object (NEWOBJ) of {cls!r:.60}')
        if args != ():
            raise UnsafePickleError(f'an object (NEWOBJ) of {cls.__name__} '
                                    'with arguments')
        self.append(cls.__new__(cls))

    def load_build(self):
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if isinstance(inst, Record):
            built = inst.build(state)
        elif type(inst) is OrderedDict:
            built = _build_ordered_dict(inst, state)
        else:
            raise UnsafePickleError(
                f'a state (BUILD) set on {type(inst).__name__}, which takes '
                'none in files of this kind')
        if built is not inst:
            stack[-1] = built
            for key in self._record_keys.pop(id(inst), ()):
                if self.memo.get(key) is inst:
                    self.memo[key] = built

    # -- the memo: remember where records are, to replace them when built ----
    def _put(self, key: int) -> None:
        # (text PUT keys are unbounded: keys chosen to collide would make
        # the memo quadratic)
        if not 0 <= key < 2**32:
            raise UnsafePickleError(f'the memo key {key:.3g}, outside '
                                    '[0, 2**32)')
        value = self.stack[-1]
        self.memo[key] = value
        if isinstance(value, Record):
            self._record_keys.setdefault(id(value), []).append(key)

    def load_put(self):
        self._put(int(self.readline()[:-1].decode('ascii')))

    def load_binput(self):
        self._put(self.read(1)[0])

    def load_long_binput(self):
        self._put(int.from_bytes(self.read(4), 'little'))

    def load_memoize(self):
        self._put(len(self.memo))

    # -- opcodes that fill containers: only builtin ones ---------------------
    def _container(self, kinds, opcode: str):
        target = self.stack[-1]
        if type(target) not in kinds:
            raise UnsafePickleError(
                f'items ({opcode}) added to {type(target).__name__}, which is '
                'not a container')
        return target

    def load_append(self):
        value = self.stack.pop()
        self._container(_LISTS, 'APPEND').append(value)

    def load_appends(self):
        items = self.pop_mark()
        self._container(_LISTS, 'APPENDS').extend(items)

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._container(_DICTS, 'SETITEM')[check_key(key)] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self._container(_DICTS, 'SETITEMS')
        if len(items) % 2:
            raise UnsafePickleError('SETITEMS with an odd number of items')
        for i in range(0, len(items), 2):
            target[check_key(items[i])] = items[i + 1]

    def load_dict(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise UnsafePickleError('DICT with an odd number of items')
        self.append({
            check_key(items[i]): items[i + 1]
            for i in range(0, len(items), 2)
        })

    def load_frozenset(self):
        self.append(frozenset(map(check_key, self.pop_mark())))

    def load_additems(self):
        items = self.pop_mark()
        self._container(_SETS, 'ADDITEMS').update(map(check_key, items))

    #: What the loaded object may hold besides builtin containers, strings,
    #: bytes and numbers (a subclass adds the types its builders return).
    result_types: Tuple[type, ...] = ()

    dispatch: Dict[int, Callable] = {}

    def load(self) -> Any:
        result = super().load()
        check_plain(result, self.result_types)
        return result


RecordUnpickler.dispatch = _restricted_dispatch()


def _build_ordered_dict(inst: OrderedDict, state: Any) -> OrderedDict:
    """The state of a ``state_dict``: its ``_metadata`` attribute only."""
    if state is None:
        return inst
    if not (isinstance(state, dict) and set(state) <= {'_metadata'}):
        raise UnsafePickleError('BUILD of an OrderedDict with attributes '
                                'other than _metadata')
    if '_metadata' in state:
        metadata = state['_metadata']
        # torch reads more than 'version' from it (e.g.
        # 'assign_to_params_buffers', which makes load_state_dict replace
        # the model's parameters by the file's tensors)
        if type(metadata) not in _DICTS or any(
                type(entry) not in _DICTS or set(entry) - {'version'} or
                not (entry.get('version') is None
                     or type(entry['version']) is int)
                for entry in metadata.values()):
            raise UnsafePickleError(
                "a state dict's _metadata with entries other than "
                '{"version": int}')
        inst._metadata = metadata
    return inst


#: Ints whose hash is themselves: keys that cannot be made to collide.
_SMALL_INT = 2**61 - 1


def check_key(key: Any) -> Any:
    """A key of a dict or an element of a set: a string, bytes, a bool,
    None or an int of less than 61 bits (Python randomises the hashes of
    strings and bytes; such ints hash to themselves). Other keys could be
    chosen to collide, which makes filling a dict quadratic in its size."""
    if isinstance(key, (str, bytes, bool)) or key is None or (
            type(key) is int and -_SMALL_INT < key < _SMALL_INT):
        return key
    raise UnsafePickleError(
        f'a dict key or set element of type {type(key).__name__}'
        + (' beyond 61 bits' if type(key) is int else ''))


#: The builtin types of a pickle's data.
PLAIN_TYPES = (dict, list, tuple, set, frozenset, str, bytes, bytearray, int,
               float, complex, bool, type(None))


def check_plain(obj: Any, types: Tuple[type, ...] = ()) -> None:
    """Raise :class:`UnsafePickleError` unless ``obj`` is plain data.

    Everything in it must be builtin data or of ``types``: no record that
    was never built (a ``NEWOBJ`` without its ``BUILD``), no builder, marker
    or other object that the file left in place of data.
    """
    allowed = PLAIN_TYPES + tuple(types)
    seen = set()
    pending = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, Record):
            raise UnsafePickleError(
                f'an incomplete {type(item).__name__} (no pickled state)')
        if not isinstance(item, allowed) or isinstance(item, type):
            raise UnsafePickleError(
                f'a {type(item).__name__} left as data, where files of this '
                'kind hold only numbers, strings, containers and arrays')
        if isinstance(item, (list, tuple, set, frozenset, dict)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, dict):
                pending.extend(item.keys())
                pending.extend(item.values())
            else:
                pending.extend(item)


def loads(data: bytes, unpickler: type, **kwargs) -> Any:
    """Unpickle ``data`` with ``unpickler`` (a :class:`RecordUnpickler`)."""
    return unpickler(io.BytesIO(data), **kwargs).load()
