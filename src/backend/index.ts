/**
 * The engine in one place: which TF.js backend runs, the kernels we add to it, and memory helpers.
 *
 * Node default: wasm (fast, no native install); fallback: cpu. `@tensorflow/tfjs-node` and WebGPU are
 * used only when asked for and installed — never required. Gradients for every op are registered by
 * importing `@tensorflow/tfjs` (tfjs-core alone registers none).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { UnsupportedError } from '../errors.js';
import { registerMissingKernels } from './kernels.js';

export { tf };
export { Rng } from './rng.js';
export { disposeAll, tidy } from './memory.js';

/** Backends we know how to start. */
export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'webgpu' | 'webgl';
const KNOWN: BackendName[] = ['wasm', 'cpu', 'tensorflow', 'webgpu', 'webgl'];

/** Options for {@link initBackend}. */
export interface BackendOptions {
  /** Which backend; default `MAKEMOST_BACKEND` from the environment, else wasm. */
  backend?: BackendName;
}

let ready: Promise<BackendName> | undefined;
let readyName: BackendName | undefined;

function envBackend(): string | undefined {
  const g = globalThis as { process?: { env?: Record<string, string | undefined> } };
  return g.process?.env?.MAKEMOST_BACKEND || undefined;
}

async function loadOptional(name: BackendName): Promise<void> {
  // Optional engines are imported only on request, so a missing package costs nothing.
  const pkg = name === 'tensorflow' ? '@tensorflow/tfjs-node' : name === 'webgpu' ? '@tensorflow/tfjs-backend-webgpu' : name === 'webgl' ? '@tensorflow/tfjs-backend-webgl' : undefined;
  if (!pkg || tf.findBackendFactory(name)) return;
  try {
    await import(/* webpackIgnore: true */ pkg);
  } catch (e) {
    throw new UnsupportedError(`backend '${name}' needs the package ${pkg}, which could not be loaded: ${(e as Error).message}`, `install it (npm install ${pkg}) or choose 'wasm' or 'cpu'`);
  }
}

/**
 * Start the backend once; later calls return the same name (asking for a different one switches).
 * Falls back from wasm to cpu if wasm cannot start.
 */
export async function initBackend(opts: BackendOptions = {}): Promise<BackendName> {
  const requested = (opts.backend ?? envBackend() ?? 'wasm') as BackendName;
  if (!KNOWN.includes(requested)) {
    throw new UnsupportedError(`unknown backend '${requested}'`, `use one of: ${KNOWN.join(', ')}`);
  }
  if (ready && readyName === requested) return ready;
  readyName = requested;
  ready = (async () => {
    registerMissingKernels();
    await loadOptional(requested);
    let ok = await tf.setBackend(requested);
    let name = requested;
    if (!ok && requested === 'wasm') {
      ok = await tf.setBackend('cpu');
      name = 'cpu';
    }
    if (!ok) throw new UnsupportedError(`backend '${requested}' failed to start`, `try MAKEMOST_BACKEND=cpu`);
    await tf.ready();
    // The cpu backend greets Node users with an advert for tfjs-node on first write; we chose cpu knowingly.
    const b = tf.backend() as unknown as { firstUse?: boolean };
    if (name === 'cpu' && 'firstUse' in b) b.firstUse = false;
    return name;
  })();
  const name = await ready;
  readyName = name;
  return name;
}

/** Number of live tensors (for leak checks). */
export function liveTensors(): number {
  return tf.memory().numTensors;
}
