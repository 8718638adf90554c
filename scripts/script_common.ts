/**
 * What the default-model training scripts share: a `--name value` flag reader, the corpus JSONL reader,
 * the add-one-smoothed unigram baseline their cards compare against, and the engine's start-up.
 */
import { readFileSync } from 'node:fs';
import { initBackend, nativeKernelsInfo } from '../src/backend/index.js';

/** The value after `name` in argv, or `fallback`. */
export function flag(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
}

/** The documents of one corpus split file (scripts/data/build_corpus.ts writes `{text, source}` lines). */
export function readDocs(path: string): { text: string; source: string }[] {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { text: string; source: string });
}

/** Add-one-smoothed unigram NLL (nats per token) of `targets` under `counts` (one count per vocabulary id). */
export function unigramNll(counts: readonly number[], targets: readonly number[]): number {
  const total = counts.reduce((s, c) => s + c, 0) + counts.length;
  let sum = 0;
  for (const t of targets) sum -= Math.log((counts[t] + 1) / total);
  return sum / targets.length;
}

/** Starts the engine; returns how the model card names it (backend, and the native kernels when on). */
export async function startEngine(): Promise<string> {
  const backendName = await initBackend();
  const nk = nativeKernelsInfo();
  return nk.enabled ? `${backendName} + native kernels (${nk.isa}, ${nk.threads} thread${nk.threads === 1 ? '' : 's'})` : backendName;
}
