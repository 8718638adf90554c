/**
 * Random-access byte sources and the tensor-source interface of the io layer. Readers pull one tensor's
 * bytes at a time through a ByteSource, so a 500 MB checkpoint never has to sit in memory whole; the same
 * reader works over a Node file descriptor (`node_bytes.ts`) or an ArrayBuffer in a browser (here).
 * No Node imports in this file.
 */

/** Read-only access to named tensors, one at a time (structurally the same as `nn`'s TensorSource). */
export interface TensorSource {
  keys(): string[];
  shape(key: string): number[];
  /** Values widened to float32 (or int32 for integer and boolean tensors). */
  read(key: string): Float32Array | Int32Array;
}

/** A byte source that can be read at any offset; `name` (a path) appears in error messages. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** Fill `into` completely with the bytes starting at `offset` (callers check the range first). */
  read(offset: number, into: Uint8Array): void;
}

/** A ByteSource over bytes already in memory (a fetched ArrayBuffer, a Uint8Array view). */
export function bufferByteSource(buf: ArrayBuffer | Uint8Array, name = '<buffer>'): ByteSource {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  return {
    name,
    size: bytes.byteLength,
    read(offset, into) {
      if (offset < 0 || offset + into.byteLength > bytes.byteLength) {
        throw new RangeError(`${name}: read of ${into.byteLength} bytes at ${offset} is past the end (${bytes.byteLength})`);
      }
      into.set(bytes.subarray(offset, offset + into.byteLength));
    },
  };
}

/** Read `length` bytes at `offset` into a fresh array. */
export function readBytes(src: ByteSource, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  src.read(offset, out);
  return out;
}
