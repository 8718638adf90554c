/**
 * A minimal zip reader (PKWARE APPNOTE: end-of-central-directory record, ZIP64 locator, central directory,
 * local headers) for PyTorch's zip checkpoints. Stored entries are read in place through the ByteSource;
 * deflated ones are inflated whole with node:zlib, capped at their declared size.
 */
import { inflateRawSync } from 'node:zlib';
import { CheckpointError } from '../errors.js';
import { bufferByteSource, readBytes, type ByteSource } from './bytes.js';

/** One file inside the archive. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** A central directory costs ~100 bytes per entry; PyTorch archives have one entry per storage. */
const MAX_DIRECTORY_BYTES = 100 * 1024 * 1024;
const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CDIR_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

/** The central directory of a zip file, with access to each entry's bytes. */
export class ZipReader {
  private constructor(private readonly src: ByteSource, private readonly byName: Map<string, ZipEntry>) {}

  /** Read the central directory of `src`; throws CheckpointError on anything malformed. */
  static open(src: ByteSource): ZipReader {
    const fail = (problem: string): never => {
      throw new CheckpointError(`zip archive '${src.name}': ${problem}`, 'the file is truncated or corrupt; re-download or re-save it');
    };
    if (src.size < 22) fail(`file is ${src.size} bytes, too short for a zip archive`);
    const tailLen = Math.min(src.size, 22 + 0xffff);
    const tailStart = src.size - tailLen;
    const tail = readBytes(src, tailStart, tailLen);
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === EOCD_SIG && i + 22 + tv.getUint16(i + 20, true) <= tailLen) { eocd = i; break; }
    }
    if (eocd < 0) fail('no end-of-central-directory record');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== ZIP64_LOCATOR_SIG) fail('ZIP64 fields without a ZIP64 locator');
      const recOffset = u64(tv, loc + 8);
      if (recOffset + 56 > src.size) fail(`ZIP64 record offset ${recOffset} is past the end`);
      const rv = new DataView(readBytes(src, recOffset, 56).buffer);
      if (rv.getUint32(0, true) !== ZIP64_EOCD_SIG) fail('bad ZIP64 end-of-central-directory signature');
      count = u64(rv, 32);
      cdSize = u64(rv, 40);
      cdOffset = u64(rv, 48);
    }
    if (cdOffset + cdSize > src.size) fail(`central directory [${cdOffset}, +${cdSize}] lies outside the file (${src.size} bytes)`);
    if (cdSize > MAX_DIRECTORY_BYTES) fail(`central directory of ${cdSize} bytes is larger than any checkpoint needs`);
    if (count * 46 > cdSize) fail(`${count} entries cannot fit in a ${cdSize}-byte central directory`);
    const cd = readBytes(src, cdOffset, cdSize);
    const cv = new DataView(cd.buffer);
    const byName = new Map<string, ZipEntry>();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || cv.getUint32(p, true) !== CDIR_SIG) fail(`central directory entry ${i} is malformed`);
      const flags = cv.getUint16(p + 8, true);
      const method = cv.getUint16(p + 10, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let size = cv.getUint32(p + 24, true);
      const nameLen = cv.getUint16(p + 28, true);
      const extraLen = cv.getUint16(p + 30, true);
      const commentLen = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cdSize) fail(`central directory entry ${i} runs past the directory`);
      const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extra field: the 64-bit values appear only for fields whose 32-bit slot is saturated.
      for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen;) {
        const id = cv.getUint16(x, true);
        const len = cv.getUint16(x + 2, true);
        if (id === 0x0001) {
          let q = x + 4;
          if (size === 0xffffffff && q + 8 <= x + 4 + len) { size = u64(cv, q); q += 8; }
          if (compressedSize === 0xffffffff && q + 8 <= x + 4 + len) { compressedSize = u64(cv, q); q += 8; }
          if (localHeaderOffset === 0xffffffff && q + 8 <= x + 4 + len) { localHeaderOffset = u64(cv, q); q += 8; }
        }
        x += 4 + len;
      }
      if (flags & 1) fail(`entry '${name}' is encrypted`);
      if (method !== 0 && method !== 8) fail(`entry '${name}' uses compression method ${method}; only stored (0) and deflate (8) are supported`);
      if (method === 0 && compressedSize !== size) fail(`stored entry '${name}' has compressed size ${compressedSize} ≠ size ${size}`);
      if (localHeaderOffset + 30 + compressedSize > src.size) fail(`entry '${name}' lies outside the file`);
      byName.set(name, { name, method, compressedSize, size, localHeaderOffset });
      p = end;
    }
    return new ZipReader(src, byName);
  }

  /** Every entry, in central-directory order. */
  entries(): ZipEntry[] {
    return [...this.byName.values()];
  }

  /** The entry called `name`, if present. */
  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /**
   * A ByteSource over one entry's uncompressed bytes: a window onto the file when stored (nothing read
   * yet), the inflated bytes when deflated.
   */
  open(entry: ZipEntry): ByteSource {
    const name = `${this.src.name}:${entry.name}`;
    const fail = (problem: string): never => {
      throw new CheckpointError(`zip archive '${this.src.name}': entry '${entry.name}' ${problem}`, 'the file is corrupt or truncated; re-download it');
    };
    const lv = new DataView(readBytes(this.src, entry.localHeaderOffset, 30).buffer);
    if (lv.getUint32(0, true) !== LOCAL_SIG) fail('has no local header');
    const dataOffset = entry.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (dataOffset + entry.compressedSize > this.src.size) fail('data lies outside the file');
    if (entry.method === 8) {
      let out: Uint8Array | undefined;
      try {
        out = inflateRawSync(readBytes(this.src, dataOffset, entry.compressedSize), { maxOutputLength: Math.max(1, entry.size) });
      } catch (e) {
        fail(`cannot be inflated: ${(e as Error).message}`);
      }
      if (out!.byteLength !== entry.size) fail(`inflates to ${out!.byteLength} bytes, expected ${entry.size}`);
      return bufferByteSource(out!, name);
    }
    const src = this.src;
    return {
      name,
      size: entry.size,
      read(offset, into) {
        if (offset < 0 || offset + into.byteLength > entry.size) throw new RangeError(`${name}: read past the end of the entry`);
        src.read(dataOffset + offset, into);
      },
    };
  }
}
