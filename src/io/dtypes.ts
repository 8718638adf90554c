/**
 * Element types of safetensors files and PyTorch storages, and their widening to the two types we compute
 * in (DESIGN "Numbers": fp32 compute, F16/BF16 widened on load). Integer and boolean tensors become int32;
 * an int64 value outside int32's range is an error naming the tensor, never a silent wrap.
 * Dtype names are safetensors' (`F32`, `BF16`, …); the f16 conversions follow IEEE 754 binary16.
 */
import { CheckpointError, UnsupportedError } from '../errors.js';
import type { ByteSource } from './bytes.js';

/** Element types we read (safetensors spelling). */
export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Every dtype we read, for error messages. */
export const SUPPORTED_DTYPES = Object.keys(DTYPE_BYTES) as Dtype[];

/** Whether `s` names a dtype we read. */
export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** Whether a dtype is widened to float32 (else to int32). */
export function isFloatDtype(d: Dtype): boolean {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Reading straight into typed arrays reinterprets bytes in host order; checkpoints are little-endian.
function checkHost(): void {
  if (!LITTLE_ENDIAN_HOST) {
    throw new UnsupportedError('reading checkpoints on a big-endian host is not supported', 'use a little-endian machine (x86, ARM)');
  }
}

let f16Bits: Uint32Array | undefined;

/** float32 bit patterns of all 65536 half values (NaN payloads kept, as a hardware conversion does). */
function f16Table(): Uint32Array {
  if (f16Bits) return f16Bits;
  const f = new Float32Array(65536);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = h >> 15 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0x1f) {
      if (m) u[h] = (((h & 0x8000) << 16) | 0x7f800000 | (m << 13)) >>> 0;
      else f[h] = sign * Infinity;
    } else if (e === 0) {
      f[h] = sign * m * 2 ** -24;
    } else {
      f[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  f16Bits = u;
  return u;
}

/** Widen half-precision bit patterns to float32. */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const table = f16Table();
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = table[bits[i]];
  return out;
}

/** Widen bfloat16 bit patterns to float32 (bf16 is the top half of a float32). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

/** Narrow float32 values to half-precision bits, rounding to nearest even (overflow → ±inf). */
export function f32ToF16(values: Float32Array): Uint16Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = u[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rem > halfway || (rem === halfway && half & 1)) half++;
      out[i] = sign | half;
    } else {
      // A carry out of the mantissa correctly bumps the exponent (up to inf).
      let half = (e << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
      out[i] = sign | half;
    }
  }
  return out;
}

function readInto<T extends { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }>(
  src: ByteSource, offset: number, arr: T,
): T {
  src.read(offset, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
  return arr;
}

/**
 * Read `count` elements of `dtype` at byte `offset` and widen them to float32 or int32. `what` names the
 * tensor (file and key) for errors. Only these bytes are read.
 */
export function readWidened(src: ByteSource, offset: number, count: number, dtype: Dtype, what: string): Float32Array | Int32Array {
  checkHost();
  switch (dtype) {
    case 'F32': return readInto(src, offset, new Float32Array(count));
    case 'F64': return Float32Array.from(readInto(src, offset, new Float64Array(count)));
    case 'F16': return f16ToF32(readInto(src, offset, new Uint16Array(count)));
    case 'BF16': return bf16ToF32(readInto(src, offset, new Uint16Array(count)));
    case 'I32': return readInto(src, offset, new Int32Array(count));
    case 'I16': return Int32Array.from(readInto(src, offset, new Int16Array(count)));
    case 'I8': return Int32Array.from(readInto(src, offset, new Int8Array(count)));
    case 'U8': return Int32Array.from(readInto(src, offset, new Uint8Array(count)));
    case 'BOOL': return Int32Array.from(readInto(src, offset, new Uint8Array(count)), (b) => (b ? 1 : 0));
    case 'I64': return narrowI64(readInto(src, offset, new Int32Array(2 * count)), what);
  }
}

/** int64 (as little-endian int32 pairs) → int32, failing on the first value that does not fit. */
function narrowI64(pairs: Int32Array, what: string): Int32Array {
  const out = new Int32Array(pairs.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = pairs[2 * i];
    const hi = pairs[2 * i + 1];
    // A value fits in int32 exactly when the high word is the sign extension of the low word.
    if (hi !== lo >> 31) {
      const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      throw new CheckpointError(
        `${what}: int64 value ${v} at flat index ${i} does not fit in int32 (range ${-(2 ** 31)}..${2 ** 31 - 1})`,
        'integer tensors are read as int32; store this tensor as float or with smaller values',
      );
    }
    out[i] = lo;
  }
  return out;
}
