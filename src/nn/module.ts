/**
 * A minimal `torch.nn.Module`: named children and parameters whose dotted names are the Hugging Face
 * checkpoint's keys (DESIGN "The one idea"). Loading is a name lookup against a {@link TensorSource};
 * saving walks the same tree. A tied weight is registered once (where the checkpoint keeps it), so it is
 * listed, trained and saved once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError } from '../errors.js';

/** Read-only access to named tensors without loading them all at once (a safetensors file, a map). */
export interface TensorSource {
  keys(): string[];
  shape(key: string): number[];
  /** Values widened to float32 (or int32 for integer tensors). */
  read(key: string): Float32Array | Int32Array;
}

/** A TensorSource over tensors already in memory. */
export function mapSource(map: Map<string, tf.Tensor>): TensorSource {
  return {
    keys: () => [...map.keys()],
    shape: (k) => map.get(k)!.shape.slice(),
    read: (k) => {
      const t = map.get(k)!;
      return t.dtype === 'int32' ? (t.dataSync() as Int32Array) : Float32Array.from(t.dataSync() as ArrayLike<number>);
    },
  };
}

/** Options for {@link Module.loadStateDict}. */
export interface LoadOptions {
  /** Fail on missing or unexpected keys (default true). Wrong shapes always fail. */
  strict?: boolean;
  /** Missing keys this accepts keep their initial values even when strict (a new head on a pretrained body). */
  allowMissing?: (key: string) => boolean;
  /** Name of the file or folder, for error messages. */
  origin?: string;
}

/** What a non-strict load skipped. */
export interface LoadReport {
  missing: string[];
  unexpected: string[];
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Base class for layers and models. */
export class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly childModules = new Map<string, Module>();

  /** Register a parameter under `name`; the module owns the returned variable. */
  protected param(name: string, init: tf.Tensor, trainable = true): tf.Variable {
    if (this.ownParams.has(name) || this.childModules.has(name)) throw new Error(`duplicate name '${name}'`);
    const v = tf.variable(init, trainable);
    init.dispose();
    this.ownParams.set(name, v);
    return v;
  }

  /** Register a child module under `name`. */
  protected child<M extends Module>(name: string, module: M): M {
    if (this.ownParams.has(name) || this.childModules.has(name)) throw new Error(`duplicate name '${name}'`);
    this.childModules.set(name, module);
    return module;
  }

  /** Add a child from outside the class (e.g. LoRA's `lora_A` / `lora_B`); fails on a taken name. */
  attach<M extends Module>(name: string, module: M): M {
    return this.child(name, module);
  }

  /** Remove a child and return it (undefined if absent); the caller owns and disposes it. */
  detach(name: string): Module | undefined {
    const m = this.childModules.get(name);
    this.childModules.delete(name);
    return m;
  }

  /** Every parameter with its dotted HF name, depth first in registration order. */
  *namedParameters(prefix = ''): Generator<[string, tf.Variable]> {
    for (const [n, p] of this.ownParams) yield [prefix + n, p];
    for (const [n, m] of this.childModules) yield* m.namedParameters(`${prefix}${n}.`);
  }

  /** Every module with its dotted name ('' for this one). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix.replace(/\.$/, ''), this];
    for (const [n, m] of this.childModules) yield* m.namedModules(`${prefix}${n}.`);
  }

  /** Parameters as a name → variable map (the live variables, not copies). */
  stateDict(): Map<string, tf.Variable> {
    return new Map(this.namedParameters());
  }

  /** Total number of scalar parameters. */
  numParameters(): number {
    let n = 0;
    for (const [, p] of this.namedParameters()) n += p.size;
    return n;
  }

  /**
   * Copy tensors from `source` into the parameters by name. Every missing, unexpected and mis-shaped
   * key is collected and reported in one CheckpointError before anything is assigned.
   */
  loadStateDict(source: TensorSource, opts: LoadOptions = {}): LoadReport {
    const strict = opts.strict ?? true;
    const params = this.stateDict();
    const keys = new Set(source.keys());
    const missing = [...params.keys()].filter((k) => !keys.has(k));
    const fatalMissing = opts.allowMissing ? missing.filter((k) => !opts.allowMissing!(k)) : missing;
    const unexpected = [...keys].filter((k) => !params.has(k));
    const misShaped: string[] = [];
    for (const [k, p] of params) {
      if (keys.has(k) && !sameShape(source.shape(k), p.shape)) {
        misShaped.push(`${k}: checkpoint [${source.shape(k).join(', ')}], model [${p.shape.join(', ')}]`);
      }
    }
    if (misShaped.length || (strict && (fatalMissing.length || unexpected.length))) {
      const where = opts.origin ? ` in ${opts.origin}` : '';
      const parts: string[] = [];
      if (fatalMissing.length) parts.push(`missing (${fatalMissing.length}): ${fatalMissing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
      if (misShaped.length) parts.push(`wrong shape (${misShaped.length}): ${misShaped.join('; ')}`);
      throw new CheckpointError(
        `checkpoint tensors do not match the model${where}:\n  ${parts.join('\n  ')}`,
        'check that config.json belongs to these weights (sizes, layer count, vocabulary)',
      );
    }
    for (const [k, p] of params) {
      if (!keys.has(k)) continue;
      const data = source.read(k);
      const t = tf.tensor(data, p.shape, p.dtype);
      p.assign(t);
      t.dispose();
    }
    return { missing, unexpected };
  }

  /** Free every parameter. */
  dispose(): void {
    for (const [, p] of this.namedParameters()) p.dispose();
  }
}

/** A list of modules named 0, 1, 2… (HF's `nn.ModuleList`). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.child(String(i), m));
  }
}
