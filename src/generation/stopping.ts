/**
 * Stopping rules (HF transformers/generation/stopping_criteria.py): EOS (several ids), length, wall-clock
 * time, stop strings, and the AbortSignal check every strategy makes before each step.
 */
import type { StoppingCriterion } from './types.js';

/** The decoding part of a tokenizer that stop strings and streaming need (PreTrainedTokenizer has it). */
export interface TokenDecoder {
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
}

/** A row is done when its last new token is one of `eosTokenIds` (HF EosTokenCriteria). */
export function eosCriterion(eosTokenIds: number[]): StoppingCriterion {
  const eos = new Set(eosTokenIds);
  return (_ids, newTokens) => newTokens.map((row) => row.length > 0 && eos.has(row[row.length - 1]));
}

/** A row is done once it has `maxNewTokens` new tokens (HF MaxLengthCriteria, counted without the prompt). */
export function maxNewTokensCriterion(maxNewTokens: number): StoppingCriterion {
  return (_ids, newTokens) => newTokens.map((row) => row.length >= maxNewTokens);
}

/** Every row is done once `seconds` have passed since this criterion was made (HF MaxTimeCriteria). */
export function maxTimeCriterion(seconds: number, now: () => number = () => Date.now()): StoppingCriterion {
  const start = now();
  return (ids) => {
    const over = (now() - start) / 1000 > seconds;
    return ids.map(() => over);
  };
}

/**
 * A row is done when its new text contains one of `stopStrings` (HF StopStringCriteria matches strings
 * ending inside the last token; decoding the tail finds the same ones). Only the tail is decoded: enough
 * tokens for the longest string even at 4 byte-tokens per character.
 */
export function stopStringCriterion(tokenizer: TokenDecoder, stopStrings: string[]): StoppingCriterion {
  const tail = 4 * Math.max(...stopStrings.map((s) => s.length)) + 8;
  return (_ids, newTokens) => newTokens.map((row) => {
    if (row.length === 0) return false;
    const text = tokenizer.decode(row.slice(-tail));
    return stopStrings.some((s) => text.includes(s));
  });
}

/** Cut `text` right after the first stop string it completes (HF stops generating there). */
export function cutAtStopString(text: string, stopStrings: string[]): string {
  let end = Infinity;
  for (const s of stopStrings) {
    const i = text.indexOf(s);
    if (i >= 0) end = Math.min(end, i + s.length);
  }
  return end === Infinity ? text : text.slice(0, end);
}

/** True when `signal` has fired. */
export function aborted(signal?: AbortSignal): boolean {
  return signal?.aborted === true;
}

/**
 * Let timers and I/O run between steps, so an abort scheduled with setTimeout (or a streaming consumer)
 * gets its turn even when a backend's reads resolve as microtasks.
 */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}
