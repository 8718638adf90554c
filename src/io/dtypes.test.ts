/** Widening and narrowing against hand-computed IEEE 754 values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointError } from '../errors.js';
import { bufferByteSource } from './bytes.js';
import { bf16ToF32, f16ToF32, f32ToF16, readWidened } from './dtypes.js';

const bitsOf = (x: Float32Array) => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

test('f16 → f32: normals, subnormals, zeros, infinities, NaN', () => {
  const cases: [number, number][] = [
    [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x3555, 0.333251953125], [0x0400, 2 ** -14],
    [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0000, 0], [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  const out = f16ToF32(Uint16Array.from(cases.map((c) => c[0])));
  cases.forEach(([, want], i) => assert.equal(out[i], want, `0x${cases[i][0].toString(16)}`));
  const neg0 = f16ToF32(Uint16Array.of(0x8000))[0];
  assert.ok(Object.is(neg0, -0));
  // NaN keeps its payload, shifted into the float32 mantissa (as a hardware conversion does).
  assert.deepEqual(bitsOf(f16ToF32(Uint16Array.of(0x7e00, 0x7c01, 0xfe00))), [0x7fc00000, 0x7f802000, 0xffc00000]);
});

test('bf16 → f32 is the upper half of the float32 bits', () => {
  const out = bf16ToF32(Uint16Array.of(0x3f80, 0xc040, 0x4049, 0x7f80, 0xff80, 0x0001, 0x8000));
  assert.deepEqual([...out.slice(0, 5)], [1, -3, 3.140625, Infinity, -Infinity]);
  assert.equal(out[5], 2 ** -133); // float32 subnormal 0x00010000
  assert.ok(Object.is(out[6], -0));
  assert.ok(Number.isNaN(bf16ToF32(Uint16Array.of(0x7fc0))[0]));
});

test('f32 → f16 rounds to nearest even, overflows to inf, underflows to zero', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400], [1e-10, 0],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [Infinity, 0x7c00], [-Infinity, 0xfc00], [-0, 0x8000],
  ];
  const out = f32ToF16(Float32Array.from(cases.map((c) => c[0])));
  cases.forEach(([x, want], i) => assert.equal(out[i], want, `${x}`));
  assert.equal(f32ToF16(Float32Array.of(NaN))[0] & 0x7e00, 0x7e00);
});

test('integer dtypes widen to int32; int64 out of range names the tensor', () => {
  const bytes = new Uint8Array(new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]).buffer);
  assert.deepEqual([...readWidened(bufferByteSource(bytes), 0, 4, 'I64', 'x')], [0, -1, 2147483647, -2147483648]);
  const big = new Uint8Array(new BigInt64Array([1n, 2147483648n]).buffer);
  assert.throws(() => readWidened(bufferByteSource(big), 0, 2, 'I64', "file 'a' tensor 'ids'"),
    (e: Error) => e instanceof CheckpointError && /tensor 'ids'/.test(e.message) && /2147483648 at flat index 1/.test(e.message));
  assert.deepEqual([...readWidened(bufferByteSource(Uint8Array.of(0, 1, 2, 255)), 0, 4, 'BOOL', 'b')], [0, 1, 1, 1]);
  assert.deepEqual([...readWidened(bufferByteSource(Uint8Array.of(0, 1, 2, 255)), 0, 4, 'U8', 'b')], [0, 1, 2, 255]);
  assert.deepEqual([...readWidened(bufferByteSource(Uint8Array.of(0, 1, 2, 255)), 0, 4, 'I8', 'b')], [0, 1, 2, -1]);
  assert.deepEqual([...readWidened(bufferByteSource(new Uint8Array(Int16Array.of(-300, 7).buffer)), 0, 2, 'I16', 'b')], [-300, 7]);
  const f64 = new Uint8Array(Float64Array.of(0.1, 1e300).buffer);
  assert.deepEqual([...readWidened(bufferByteSource(f64), 0, 2, 'F64', 'd')], [Math.fround(0.1), Infinity]);
});
