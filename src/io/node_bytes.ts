/**
 * A ByteSource over a file descriptor (Node only): each read is one positioned `fs.readSync`, so opening
 * a checkpoint costs its header and reading a tensor costs that tensor's bytes, never the whole file.
 */
import * as fs from 'node:fs';
import { CheckpointError } from '../errors.js';
import type { ByteSource } from './bytes.js';

/** A ByteSource that holds an open file; call `close()` when done. */
export interface FileByteSource extends ByteSource {
  close(): void;
}

/** Open `path` for random-access reads. */
export function fileByteSource(path: string): FileByteSource {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new CheckpointError(`cannot open checkpoint file '${path}': ${(e as Error).message}`, 'check the path and file permissions');
  }
  let size: number;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e) {
    fs.closeSync(fd);
    throw new CheckpointError(`cannot read checkpoint file '${path}': ${(e as Error).message}`, 'pass a file, not a folder or device');
  }
  let open = true;
  return {
    name: path,
    size,
    read(offset, into) {
      if (!open) throw new CheckpointError(`checkpoint file '${path}' was read after close()`, 'read tensors before closing the checkpoint');
      let done = 0;
      while (done < into.byteLength) {
        // One read(2) moves at most ~2 GB; a large embedding matrix takes several.
        const n = fs.readSync(fd, into, done, Math.min(into.byteLength - done, 1 << 30), offset + done);
        if (n === 0) {
          throw new CheckpointError(`checkpoint file '${path}' ended at byte ${offset + done}, expected ${offset + into.byteLength}`,
            'the file changed or was truncated while open; re-download or re-save it');
        }
        done += n;
      }
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}
