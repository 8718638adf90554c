/**
 * Interop with real PyTorch (Debian's python3-torch at /usr/bin/python3): `torch.save` files read by the
 * restricted .bin reader, safetensors written by hand in Python read by us, and our files read by Python.
 * Fails with an install hint when that Python or torch is missing (CI installs it): never skipped.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { openCheckpoint, saveSafetensors } from './hf_folder.js';
import { bufferByteSource } from './bytes.js';
import { fileByteSource } from './node_bytes.js';
import { openTorchBin } from './torch_bin.js';

const PY = '/usr/bin/python3';
const hasTorch = (() => {
  try {
    execFileSync(PY, ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
// PyTorch is the independent reference here: without it these checks fail (CI installs it), never skip.
const skip = false;
test('PyTorch is available as the reference', () => {
  assert.ok(hasTorch, `${PY} cannot import torch. HINT: install Debian's python3-torch (apt-get install -y python3-torch)`);
});

const python = (script: string, ...args: string[]): string => execFileSync(PY, ['-c', script, ...args], { encoding: 'utf8' });

const FIXTURES = String.raw`
import sys, json, struct, os, zipfile, torch
d = sys.argv[1]
g = torch.Generator().manual_seed(0)
lin = torch.nn.Linear(3, 2)
sd = lin.state_dict()  # an nn.Module state dict carries _metadata, pickled with BUILD
base = torch.randn(4, 6, generator=g)
sd['weight'] = torch.randn(2, 3, generator=g)
sd['f16'] = torch.randn(7, generator=g).half()
sd['bf16'] = torch.randn(2, 3, generator=g).bfloat16()
sd['f64'] = torch.randn(4, generator=g).double()
sd['i64'] = torch.tensor([0, -1, 2**31 - 1, -2**31, 42])
sd['i32'] = torch.tensor([1, -2, 3], dtype=torch.int32)
sd['i16'] = torch.tensor([-300, 300], dtype=torch.int16)
sd['i8'] = torch.tensor([-5, 5], dtype=torch.int8)
sd['u8'] = torch.tensor([0, 255], dtype=torch.uint8)
sd['bool'] = torch.tensor([True, False, True])
sd['base'] = base
sd['transposed'] = base.t()
sd['row'] = base[1]
sd['col'] = base[:, 2]
sd['block'] = base[1:3, 2:5]
sd['half_t'] = torch.randn(3, 2, generator=g).half().t()
sd['scalar'] = torch.tensor(3.5)
sd['empty'] = torch.zeros(0, 3)
sd['param'] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
torch.save(sd, d + '/pytorch_model.bin')
def values(t):
    t = t.detach()
    return t.float().flatten().tolist() if t.is_floating_point() else t.flatten().int().tolist()
bin_expected = {k: {'shape': list(v.shape), 'values': values(v)} for k, v in sd.items()}

with zipfile.ZipFile(d + '/pytorch_model.bin') as src, zipfile.ZipFile(d + '/deflated.bin', 'w', zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
torch.save({'w': torch.ones(2)}, d + '/legacy.bin', _use_new_zipfile_serialization=False)
torch.save({'big': torch.tensor([1, 2**40])}, d + '/big_int.bin')
torch.save({'model': {'w': torch.ones(1)}}, d + '/nested.bin')
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + d + '/pwned',))
torch.save({'w': Evil()}, d + '/evil.bin')

# A safetensors file written by hand with struct, independent of our writer.
tensors = {
    'f32': (torch.randn(2, 3, generator=g), 'F32', 'f'),
    'f16': (torch.tensor([1.0, -0.5, 65504.0, 6e-8, 0.1]).half(), 'F16', 'e'),
    'bf16': (torch.tensor([1.0, -3.0, 3.14159, 1e-30]).bfloat16(), 'BF16', 'h'),
    'f64': (torch.randn(3, generator=g).double(), 'F64', 'd'),
    'i64': (torch.tensor([[5, -6], [2**31 - 1, -2**31]]), 'I64', 'q'),
    'i32': (torch.tensor([7, -8], dtype=torch.int32), 'I32', 'i'),
    'i16': (torch.tensor([-300], dtype=torch.int16), 'I16', 'h'),
    'i8': (torch.tensor([-1], dtype=torch.int8), 'I8', 'b'),
    'u8': (torch.tensor([250], dtype=torch.uint8), 'U8', 'B'),
    'bool': (torch.tensor([False, True]), 'BOOL', '?'),
}
header = {'__metadata__': {'format': 'pt', 'source': 'hand'}}
data = b''
for name, (t, dt, fmt) in tensors.items():
    vals = (t.view(torch.int16) if dt == 'BF16' else t).flatten().tolist()
    blob = struct.pack('<%d%s' % (len(vals), fmt), *vals)
    header[name] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [len(data), len(data) + len(blob)]}
    data += blob
hb = json.dumps(header).encode()
hb += b' ' * (-len(hb) % 8)
with open(d + '/hand.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(hb)) + hb + data)
st_expected = {k: {'shape': list(t.shape), 'values': values(t)} for k, (t, _, _) in tensors.items()}
os.mkdir(d + '/sharded_bin')
torch.save({'a': torch.tensor([1.0, 2.0])}, d + '/sharded_bin/pytorch_model-00001-of-00002.bin')
torch.save({'b': torch.tensor([[3]], dtype=torch.int32)}, d + '/sharded_bin/pytorch_model-00002-of-00002.bin')
with open(d + '/sharded_bin/pytorch_model.bin.index.json', 'w') as f:
    json.dump({'metadata': {'total_size': 12}, 'weight_map': {'a': 'pytorch_model-00001-of-00002.bin', 'b': 'pytorch_model-00002-of-00002.bin'}}, f)
print(json.dumps({'bin': bin_expected, 'st': st_expected}))
`;

const READ_OURS = String.raw`
import sys, json, struct, torch
path, orig = sys.argv[1], json.loads(sys.argv[2])
raw = open(path, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = header.pop('__metadata__')
dtypes = {'F32': torch.float32, 'I32': torch.int32, 'F16': torch.float16}
out, end = {}, 0
for k in sorted(header):
    e = header[k]
    b, f = e['data_offsets']
    assert b == end, 'data not packed in name order'
    end = f
    if k == 'h':
        continue  # compared bit for bit below (holds an inf, which JSON cannot carry)
    t = torch.frombuffer(bytearray(data[b:f]), dtype=dtypes[e['dtype']]).reshape(e['shape'])
    out[k] = {'dtype': e['dtype'], 'shape': list(t.shape), 'values': t.float().flatten().tolist() if t.is_floating_point() else t.flatten().tolist()}
half_ok = torch.equal(torch.frombuffer(bytearray(data[header['h']['data_offsets'][0]:header['h']['data_offsets'][1]]), dtype=torch.int16),
                      torch.tensor(orig, dtype=torch.float32).half().view(torch.int16))
print(json.dumps({'meta': meta, 'aligned': (8 + n) % 8 == 0, 'covers': end == len(data), 'tensors': out, 'half_matches_torch': half_ok}))
`;

interface Expected { shape: number[]; values: number[] }
let dir = '';
let expected: { bin: Record<string, Expected>; st: Record<string, Expected> };

before(() => {
  if (!hasTorch) return;
  dir = fs.mkdtempSync(join(os.tmpdir(), 'makemost-py-'));
  expected = JSON.parse(python(FIXTURES, dir));
});
after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

function checkAll(ck: { keys(): string[]; shape(k: string): number[]; read(k: string): Float32Array | Int32Array }, want: Record<string, Expected>): void {
  assert.deepEqual(ck.keys(), Object.keys(want));
  for (const [k, w] of Object.entries(want)) {
    assert.deepEqual(ck.shape(k), w.shape, k);
    assert.deepEqual([...ck.read(k)], w.values, k);
  }
}

test('pytorch_model.bin from torch.save: every dtype, views, shared storage, parameters', { skip }, () => {
  const ck = openCheckpoint(dir); // only pytorch_model.bin is a weight file here
  assert.equal(ck.format, 'pytorch');
  checkAll(ck, expected.bin);
  assert.equal(ck.dtype('bf16'), 'BF16');
  assert.equal(ck.dtype('i64'), 'I64');
  assert.ok(ck.read('transposed') instanceof Float32Array && ck.read('bool') instanceof Int32Array);
  ck.close();
});

test('sharded pytorch_model.bin.index.json', { skip }, () => {
  const ck = openCheckpoint(join(dir, 'sharded_bin'));
  assert.equal(ck.format, 'pytorch');
  assert.deepEqual(ck.keys(), ['a', 'b']);
  assert.deepEqual([...ck.read('a')], [1, 2]);
  assert.deepEqual(ck.shape('b'), [1, 1]);
  assert.deepEqual([...ck.read('b')], [3]);
  ck.close();
});

/** Open and read everything; anything but success or a CheckpointError is a bug. */
function survives(bytes: Uint8Array, label: string): void {
  try {
    const r = openTorchBin(bufferByteSource(bytes, label));
    for (const k of r.keys()) r.read(k);
  } catch (e) {
    assert.ok(e instanceof CheckpointError, `${label}: ${(e as Error).stack}`);
  }
}

test('truncated or corrupted .bin files give CheckpointErrors, never other failures', { skip }, () => {
  for (const name of ['pytorch_model.bin', 'deflated.bin']) {
    const whole = new Uint8Array(fs.readFileSync(join(dir, name)));
    for (const cut of [0, 3, 4, 30, 200, whole.length >> 1, whole.length - 30, whole.length - 1]) {
      survives(whole.subarray(0, cut), `${name} cut at ${cut}`);
    }
    let seed = 12345;
    for (let i = 0; i < 400; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const copy = whole.slice();
      // The pickle and first storages at the front, the central directory at the back.
      const near = seed % Math.min(whole.length, 1500);
      const at = i % 2 ? near : whole.length - 1 - near;
      copy[at] ^= 1 + ((seed >>> 16) % 255);
      survives(copy, `${name} byte ${at} flipped`);
    }
  }
});

test('a deflate-compressed zip of the same checkpoint reads the same', { skip }, () => {
  const file = fileByteSource(join(dir, 'deflated.bin'));
  checkAll(openTorchBin(file), expected.bin);
  file.close();
});

test('refusals: malicious global, legacy format, nested dict, int64 out of range', { skip }, () => {
  const open = (name: string) => {
    const file = fileByteSource(join(dir, name));
    try {
      const r = openTorchBin(file);
      for (const k of r.keys()) r.read(k);
    } finally {
      file.close();
    }
  };
  assert.throws(() => open('evil.bin'), (e: Error) => e instanceof CheckpointError &&
    /evil\.bin': refusing to execute pickle global posix\.system/.test(e.message) && /HINT: convert it to safetensors .*weights_only=True/.test(e.message));
  assert.equal(fs.existsSync(join(dir, 'pwned')), false);
  assert.throws(() => open('legacy.bin'), (e: Error) => e instanceof CheckpointError &&
    /legacy\.bin': legacy \(pre-1\.6, non-zip\) torch\.save format is not supported/.test(e.message) && /save_file/.test(e.message));
  assert.throws(() => open('nested.bin'), (e: Error) => e instanceof CheckpointError && /'model' is not a tensor; expected a flat state dict/.test(e.message));
  assert.throws(() => open('big_int.bin'), (e: Error) => e instanceof CheckpointError && /tensor 'big': int64 value 1099511627776 at flat index 1/.test(e.message));
});

test('safetensors written by hand in Python reads with the values torch prints', { skip }, () => {
  const ck = openCheckpoint(join(dir, 'hand.safetensors'));
  checkAll(ck, expected.st);
  assert.deepEqual(ck.metadata, { format: 'pt', source: 'hand' });
  ck.close();
});

test('our safetensors file reads in Python with the same values; float16 matches torch.half()', { skip }, () => {
  const w = Float32Array.of(0.5, -1.25, 3e-39, 1e30, Math.PI, -0);
  const halves = Float32Array.of(0.1, 1 + 2 ** -11, 65519, 65520, 1e-8, 3e-8, -2.5, 1 / 3);
  const ids = Int32Array.of(2147483647, -2147483648, 0);
  const path = join(dir, 'ours.safetensors');
  saveSafetensors(path, { w: { shape: [2, 3], dtype: 'float32', data: w }, ids: { shape: [3], dtype: 'int32', data: ids }, h: { shape: [8], dtype: 'float16', data: halves } });
  const got = JSON.parse(python(READ_OURS, path, JSON.stringify([...halves])));
  assert.deepEqual(got.meta, { format: 'pt' });
  assert.equal(got.aligned, true);
  assert.equal(got.covers, true);
  assert.equal(got.half_matches_torch, true);
  assert.deepEqual(got.tensors.w, { dtype: 'F32', shape: [2, 3], values: [...w] });
  assert.deepEqual(got.tensors.ids, { dtype: 'I32', shape: [3], values: [...ids] });
});

const PLAIN_PICKLES = String.raw`
import pickle, json
obj = {'a': [1, -2, 3.5, 'x', None, True, False], 'b': (1, 2), 'c': (), 'big': 2**70, 'neg': -2**40, 'i': 300,
       'j': 70000, 'u': 'h\u00e9llo \\ \n \u4e16', 'nested': {'k': [[], {}, (7,)]}, 'f': -1e-300}
shared = [1]
obj['s1'] = shared
obj['s2'] = shared
print(json.dumps([pickle.dumps(obj, protocol=p).hex() for p in range(6)]))
`;

test('the pickle VM rebuilds plain data from Python pickles of protocols 0–5, and refuses any global', { skip }, async () => {
  const { unpickle } = await import('./pickle.js');
  const toJson = (v: unknown): unknown => {
    if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, toJson(x)]));
    if (Array.isArray(v)) return v.map(toJson);
    return typeof v === 'bigint' ? v.toString() : v;
  };
  const want = {
    a: [1, -2, 3.5, 'x', null, true, false], b: [1, 2], c: [], big: (2n ** 70n).toString(), neg: -(2 ** 40), i: 300,
    j: 70000, u: 'h\u00e9llo \\ \n \u4e16', nested: { k: [[], {}, [7]] }, f: -1e-300, s1: [1], s2: [1],
  };
  const hooks = { global: () => undefined, persistentLoad: () => { throw new Error('no persistent ids'); } };
  const hexes: string[] = JSON.parse(python(PLAIN_PICKLES));
  hexes.forEach((hex, protocol) => {
    const v = unpickle(Uint8Array.from(Buffer.from(hex, 'hex')), hooks, 'p', 'h') as Map<string, unknown>;
    assert.deepEqual(toJson(v), want, `protocol ${protocol}`);
    assert.equal(v.get('s1'), v.get('s2'), `protocol ${protocol}: memo keeps shared objects shared`);
  });
  const evil = Buffer.from(python(String.raw`
import pickle, os
class E:
    def __reduce__(self): return (eval, ('1',))
print(pickle.dumps(E(), protocol=4).hex())`).trim(), 'hex');
  assert.throws(() => unpickle(Uint8Array.from(evil), hooks, "file 'e.pkl'", 'use safetensors'),
    (e: Error) => e instanceof CheckpointError && /file 'e\.pkl': refusing to execute pickle global builtins\.eval/.test(e.message));
});
