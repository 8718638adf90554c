/**
 * The engine in one place: which TF.js backend runs, the kernels we add to it, and memory helpers.
 *
 * Node default: wasm (fast, no native install); fallback: cpu. `@tensorflow/tfjs-node` and WebGPU are
 * used only when asked for and installed — never required. Gradients for every op are registered by
 * importing `@tensorflow/tfjs` (tfjs-core alone registers none).
 *
 * In Node, when the optional addon in `native/` has been built, its multi-threaded kernels replace the
 * wasm and cpu backends' matmuls (and a few element-wise kernels); `MAKEMOST_NATIVE=0` or
 * `{native: false}` keeps the backends' own. The addon is reached by a dynamic import with a computed
 * name, so browser bundles never include it.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { UnsupportedError } from '../errors.js';
import { registerMissingKernels } from './kernels.js';
import type * as NativeModule from './native/register.js';
import type { NativeKernelsInfo } from './native/register.js';

export { tf };
export { Rng } from './rng.js';
export { disposeAll, tidy } from './memory.js';

export type { NativeKernelsInfo } from './native/register.js';

/** Backends we know how to start. */
export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'webgpu' | 'webgl';
const KNOWN: BackendName[] = ['wasm', 'cpu', 'tensorflow', 'webgpu', 'webgl'];

/** Options for {@link initBackend}. */
export interface BackendOptions {
  /** Which backend; default `MAKEMOST_BACKEND` from the environment, else wasm. */
  backend?: BackendName;
  /** Native kernels for wasm and cpu (Node, when built); default on unless `MAKEMOST_NATIVE=0`. */
  native?: boolean;
  /** Threads for the native kernels; default `MAKEMOST_THREADS`, else every core. */
  threads?: number;
}

let ready: Promise<BackendName> | undefined;
let readyName: BackendName | undefined;

type NodeGlobal = { process?: { env?: Record<string, string | undefined>; versions?: { node?: string } } };

function env(name: string): string | undefined {
  return (globalThis as NodeGlobal).process?.env?.[name] || undefined;
}

function envBackend(): string | undefined {
  return env('MAKEMOST_BACKEND');
}

let nativeModule: typeof NativeModule | undefined;

async function configureNative(opts: BackendOptions): Promise<void> {
  if (!(globalThis as NodeGlobal).process?.versions?.node) return;
  const wanted = opts.native ?? env('MAKEMOST_NATIVE') !== '0';
  if (!wanted) {
    nativeModule?.disableNativeKernels(opts.native === false ? 'native: false' : 'MAKEMOST_NATIVE=0');
    return;
  }
  // A computed specifier: bundlers cannot follow it, so the Node-only module stays out of browser builds.
  const spec = ['.', 'native', 'register.js'].join('/');
  nativeModule ??= (await import(/* webpackIgnore: true */ /* @vite-ignore */ spec)) as typeof NativeModule;
  const threads = opts.threads ?? (env('MAKEMOST_THREADS') ? Number(env('MAKEMOST_THREADS')) : undefined);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
    throw new UnsupportedError(`threads must be a positive integer, got ${threads}`, 'set MAKEMOST_THREADS (or the threads option) to 1, 2, …');
  }
  nativeModule.enableNativeKernels({ threads, hugePages: env('MAKEMOST_HUGE_PAGES') !== '0' });
}

/**
 * Whether `matMul(x, w, false, true)` is as fast as the untransposed product on the active backend
 * (native kernels handle every transpose; the plain wasm backend is ~20x slower when one is transposed).
 */
export function transposedMatMulIsFast(): boolean {
  if (!nativeModule?.nativeKernelsEnabled()) return false;
  const name = tf.getBackend();
  return name === 'wasm' || name === 'cpu';
}

/**
 * AdamW with its moments in host memory (see native/register.ts): `undefined` when the native kernels
 * are not on a wasm or cpu backend, else the runner, which returns p' and updates m and v in place.
 */
export function adamwHostMoments(): typeof NativeModule.adamwHost | undefined {
  return nativeModule?.adamwHostAvailable() ? nativeModule.adamwHost : undefined;
}

/** Whether native kernels are in use, on how many threads and with which instruction set (or why not). */
export function nativeKernelsInfo(): NativeKernelsInfo {
  return nativeModule ? nativeModule.nativeKernelsInfo() : { enabled: false, kernels: [], reason: (globalThis as NodeGlobal).process?.versions?.node ? 'initBackend() not called yet' : 'not in Node' };
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
  if (ready && readyName === requested) {
    const name = await ready;
    await configureNative(opts);
    return name;
  }
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
  await configureNative(opts);
  return name;
}

/** Number of live tensors (for leak checks). */
export function liveTensors(): number {
  return tf.memory().numTensors;
}
