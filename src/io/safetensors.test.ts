/** Safetensors: hand-built files (independent of our writer), validation errors, round trips, lazy reads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { CheckpointError, ShapeError } from '../errors.js';
import { bufferByteSource, type ByteSource } from './bytes.js';
import { saveSafetensors } from './hf_folder.js';
import { fileByteSource } from './node_bytes.js';
import { openSafetensors, safetensorsFromBuffer, serializeSafetensors } from './safetensors.js';

/** A file built byte by byte: u64 LE header length, the header text, then `data`. */
function handFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: number): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  const v = new DataView(out.buffer);
  const n = headerLen ?? json.length;
  v.setUint32(0, n % 2 ** 32, true);
  v.setUint32(4, Math.floor(n / 2 ** 32), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const le = (arr: ArrayBufferView) => new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);

test('reads a hand-built file with every dtype, widened', () => {
  const parts = [
    le(Float32Array.of(1.5, -2)), le(Uint16Array.of(0x3c00, 0x0001)), le(Uint16Array.of(0x3f80, 0xc040)),
    le(Float64Array.of(0.1)), le(BigInt64Array.of(-5n, 7n)), le(Int32Array.of(-9)), le(Int16Array.of(-300)),
    Uint8Array.of(0xff), Uint8Array.of(200), Uint8Array.of(1, 0),
  ];
  const names = ['f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'i16', 'i8', 'u8', 'bool'];
  const dtypes = ['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];
  const shapes = [[2], [2], [1, 2], [], [2], [1], [1], [1], [1], [2]];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'hi' } };
  let at = 0;
  parts.forEach((p, i) => {
    header[names[i]] = { dtype: dtypes[i], shape: shapes[i], data_offsets: [at, at + p.length] };
    at += p.length;
  });
  const data = new Uint8Array(at);
  at = 0;
  for (const p of parts) { data.set(p, at); at += p.length; }
  const r = safetensorsFromBuffer(handFile(header, data), 'hand.safetensors');
  assert.deepEqual(r.metadata, { format: 'pt', note: 'hi' });
  assert.deepEqual(r.keys(), names);
  const want = [[1.5, -2], [1, 2 ** -24], [1, -3], [Math.fround(0.1)], [-5, 7], [-9], [-300], [-1], [200], [1, 0]];
  names.forEach((k, i) => {
    const v = r.read(k);
    assert.ok(['F32', 'F16', 'BF16', 'F64'].includes(dtypes[i]) ? v instanceof Float32Array : v instanceof Int32Array, k);
    assert.deepEqual([...v], want[i], k);
    assert.equal(r.dtype(k), dtypes[i]);
  });
  assert.deepEqual(r.shape('bf16'), [1, 2]);
  assert.deepEqual(r.shape('f64'), []);
});

test('round trip float32/int32 is bit-exact; float16 stores rounded halves', () => {
  const f = new Float32Array(1000);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = Math.imul(i + 1, 2654435761) >>> 0; // every kind of pattern
  bits.set([0x7fc00001, 0x80000000, 0x7f800000, 0x00000001], 0); // NaN payload, -0, inf, subnormal
  const ints = Int32Array.of(0, -1, 2147483647, -2147483648, 12345);
  const halves = Float32Array.of(1, 0.1, 65520, 2 ** -24);
  const bytes = serializeSafetensors(new Map([
    ['w', { shape: [10, 100], dtype: 'float32' as const, data: f }],
    ['ids', { shape: [5], dtype: 'int32' as const, data: ints }],
    ['h', { shape: [2, 2], dtype: 'float16' as const, data: halves }],
  ]));
  const r = safetensorsFromBuffer(bytes);
  assert.deepEqual([...new Uint32Array(r.read('w').buffer)], [...bits]);
  assert.deepEqual([...r.read('ids')], [...ints]);
  assert.equal(r.dtype('h'), 'F16');
  assert.deepEqual([...r.read('h')], [1, 0.0999755859375, Infinity, 2 ** -24]); // 0x3c00, 0x2e66, 0x7c00, 0x0001
  assert.deepEqual(r.shape('w'), [10, 100]);
});

test('writer layout: 8-byte aligned header padded with spaces, format pt, names sorted, data packed', () => {
  const bytes = serializeSafetensors({
    'b.weight': { shape: [2], dtype: 'float32', data: Float32Array.of(1, 2) },
    'a.bias': { shape: [1], dtype: 'int32', data: Int32Array.of(3) },
  }, { step: '7' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(text, /^\{.*\} *$/);
  const h = JSON.parse(text);
  assert.deepEqual(Object.keys(h), ['__metadata__', 'a.bias', 'b.weight']);
  assert.deepEqual(h.__metadata__, { format: 'pt', step: '7' });
  assert.deepEqual(h['a.bias'], { dtype: 'I32', shape: [1], data_offsets: [0, 4] });
  assert.deepEqual(h['b.weight'], { dtype: 'F32', shape: [2], data_offsets: [4, 12] });
  assert.equal(bytes.length, 8 + n + 12);
});

test('writer rejects bad tensors before writing anything', () => {
  assert.throws(() => serializeSafetensors({ x: { shape: [2, 2], dtype: 'float32', data: new Float32Array(3) } }),
    (e: Error) => e instanceof ShapeError && /needs 4 values, data has 3/.test(e.message));
  assert.throws(() => serializeSafetensors({ x: { shape: [1], dtype: 'int32', data: new Float32Array(1) } }),
    (e: Error) => e instanceof ShapeError && /needs a Int32Array/.test(e.message));
  assert.throws(() => serializeSafetensors({ __metadata__: { shape: [1], dtype: 'int32', data: new Int32Array(1) } }), CheckpointError);
});

/** [what to build, expected message fragment] — every case must be a CheckpointError naming the file. */
const f32 = (n: number) => le(new Float32Array(n));
const BAD: [string, Uint8Array, RegExp][] = [
  ['short file', Uint8Array.of(1, 2, 3, 4, 5), /5 bytes, shorter than the 8-byte header length/],
  ['header past end', handFile('{}', undefined, 1000), /header length 1000 bytes runs past the end of the file/],
  ['header not JSON', handFile('{"a": '), /header is not valid UTF-8 JSON/],
  ['header not UTF-8', handFile('{}').fill(0xff, 8), /header is not valid UTF-8 JSON/],
  ['header an array', handFile('[1, 2]'), /header is not a JSON object \(found array\)/],
  ['header a number', handFile('42'), /header is not a JSON object \(found number\)/],
  ['entry not object', handFile({ w: 3 }), /tensor 'w': entry is not an object/],
  ['unknown dtype', handFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
    /tensor 'w': unknown dtype "F8_E4M3"; supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL/],
  ['negative dim', handFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }), /tensor 'w': shape must be a list of non-negative integers, found \[-1\]/],
  ['fractional dim', handFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32(1)), /shape must be a list of non-negative integers, found \[1.5\]/],
  ['shape not list', handFile({ w: { dtype: 'F32', shape: '2', data_offsets: [0, 8] } }, f32(2)), /shape must be a list of non-negative integers, found "2"/],
  ['offsets missing', handFile({ w: { dtype: 'F32', shape: [1] } }, f32(1)), /data_offsets must be two non-negative integers/],
  ['offsets outside', handFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), /tensor 'w': data_offsets \[0, 16\] lie outside the data area \(8 bytes\)/],
  ['offsets reversed', handFile({ w: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, f32(2)), /tensor 'w': data_offsets \[8, 4\] are reversed/],
  ['overlap', handFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
    /tensor 'b' data_offsets \[4, 12\] overlap tensor 'a' \[0, 8\]/],
  ['byte count', handFile({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 8] } }, f32(2)), /tensor 'w': holds 8 bytes but shape \[2, 3\] × F16 \(2 bytes\) needs 12/],
  ['bad metadata', handFile({ __metadata__: { n: 1 } }), /__metadata__ must be an object of strings/],
];

for (const [what, bytes, msg] of BAD) {
  test(`bad input gives a CheckpointError naming file and problem: ${what}`, () => {
    assert.throws(() => safetensorsFromBuffer(bytes, 'bad.safetensors'), (e: Error) => {
      assert.ok(e instanceof CheckpointError, `${what}: got ${e}`);
      assert.match(e.message, /safetensors file 'bad\.safetensors': /);
      assert.match(e.message, msg);
      assert.match(e.message, /HINT: /);
      return true;
    });
  });
}

test('an absurd header length is refused without allocating or reading it', () => {
  let read = 0;
  const huge: ByteSource = {
    name: 'huge.safetensors', size: 2 ** 41,
    read(offset, into) {
      read += into.byteLength;
      into.fill(0);
      if (offset === 0) new DataView(into.buffer, into.byteOffset).setUint32(0, 200 * 1024 * 1024, true);
    },
  };
  assert.throws(() => openSafetensors(huge), /huge\.safetensors': header length 209715200 bytes exceeds the 104857600-byte limit/);
  assert.equal(read, 8);
  const v = handFile('{}');
  new DataView(v.buffer).setUint32(4, 0xffffffff, true); // header length ~2^64
  assert.throws(() => safetensorsFromBuffer(v, 'x.st'), (e: Error) => e instanceof CheckpointError && /exceeds the/.test(e.message));
});

test('a file on disk: errors name the path; reading one tensor reads only its bytes', () => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'makemost-st-'));
  try {
    const bad = join(dir, 'bad.safetensors');
    fs.writeFileSync(bad, Uint8Array.of(1, 2));
    assert.throws(() => openSafetensors(fileByteSource(bad)), (e: Error) => e instanceof CheckpointError && e.message.includes(`'${bad}'`));
    assert.throws(() => fileByteSource(join(dir, 'none.safetensors')), (e: Error) => e instanceof CheckpointError && /cannot open/.test(e.message));

    const path = join(dir, 'model.safetensors');
    const big = new Float32Array(1 << 20).fill(0.5);
    saveSafetensors(path, { big: { shape: [1024, 1024], dtype: 'float32', data: big }, small: { shape: [3], dtype: 'float32', data: Float32Array.of(1, 2, 3) } });
    const file = fileByteSource(path);
    let bytesRead = 0;
    const counted: ByteSource = { name: file.name, size: file.size, read: (o, into) => { bytesRead += into.byteLength; file.read(o, into); } };
    const r = openSafetensors(counted);
    const headerBytes = bytesRead;
    assert.ok(headerBytes < 300, `header read ${headerBytes}`);
    assert.deepEqual([...r.read('small')], [1, 2, 3]);
    assert.equal(bytesRead - headerBytes, 12);
    assert.equal(r.read('big').length, 1 << 20);
    assert.equal(bytesRead - headerBytes, 12 + 4 * (1 << 20));
    file.close();
    assert.throws(() => r.read('small'), /after close/);
    assert.throws(() => r.read('nope'), (e: Error) => e instanceof CheckpointError && /has no tensor 'nope' \(it has 2: big, small\)/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bufferByteSource over a Uint8Array view honours its offset', () => {
  const file = serializeSafetensors({ x: { shape: [2], dtype: 'float32', data: Float32Array.of(7, 8) } });
  const padded = new Uint8Array(file.length + 3);
  padded.set(file, 3);
  const r = openSafetensors(bufferByteSource(padded.subarray(3)));
  assert.deepEqual([...r.read('x')], [7, 8]);
});

test('corrupted headers give CheckpointErrors, never other failures', () => {
  const whole = serializeSafetensors({
    a: { shape: [2, 3], dtype: 'float32', data: new Float32Array(6) },
    b: { shape: [4], dtype: 'float16', data: new Float32Array(4) },
    c: { shape: [1], dtype: 'int32', data: new Int32Array(1) },
  });
  const headerEnd = 8 + Number(new DataView(whole.buffer).getBigUint64(0, true));
  let seed = 99;
  for (let i = 0; i < 2000; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const copy = whole.slice();
    const at = seed % headerEnd;
    copy[at] = (seed >>> 8) & 0xff;
    try {
      const r = safetensorsFromBuffer(copy, 'fuzz.safetensors');
      for (const k of r.keys()) r.read(k);
    } catch (e) {
      assert.ok(e instanceof CheckpointError && e.message.includes("'fuzz.safetensors'"), `byte ${at}: ${(e as Error).stack}`);
    }
  }
});
