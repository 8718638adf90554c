/**
 * Attribute labellers for conditional decoding (methods.md §5.3): a yes/no test on a complete output,
 * used to label the LM's own samples for classifier training and, when the output is finished, as the
 * exact "done" term of ACBS. The built-in ones serialise to a small JSON spec so a saved classifier
 * remembers what it predicts; a user function is saved by name only and must be passed again on load.
 */
import { ConfigError } from '../../errors.js';

/** What a classifier predicts, as stored in attribute_classifier.json. */
export type AttributeSpec =
  | { kind: 'non-empty' }
  | { kind: 'min-length'; length: number }
  | { kind: 'length'; length: number }
  | { kind: 'no-repeat-ngram'; n: number }
  | { kind: 'custom'; name: string };

/**
 * A labeller: `label(tokens)` sees the generated tokens only (no prompt, final EOS removed). It must only
 * read `tokens` (ACBS reuses the array between calls).
 */
export interface Attribute {
  readonly spec: AttributeSpec;
  label(tokens: number[]): boolean;
}

function positiveInt(v: unknown, what: string, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min) {
    throw new ConfigError(`attribute ${what} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`, `pass ${what} ≥ ${min}`);
  }
  return v as number;
}

/** The output has at least one token. */
export function nonEmpty(): Attribute {
  return { spec: { kind: 'non-empty' }, label: (t) => t.length > 0 };
}

/** The output has at least `length` tokens. */
export function minLength(length: number): Attribute {
  positiveInt(length, 'min-length length', 0);
  return { spec: { kind: 'min-length', length }, label: (t) => t.length >= length };
}

/** The output has exactly `length` tokens. */
export function exactLength(length: number): Attribute {
  positiveInt(length, 'length', 0);
  return { spec: { kind: 'length', length }, label: (t) => t.length === length };
}

/** True when no n-gram of `tokens` occurs twice. */
export function hasNoRepeatedNgram(tokens: number[], n: number): boolean {
  const seen = new Set<string>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join(',');
    if (seen.has(key)) return false;
    seen.add(key);
  }
  return true;
}

/** No n-gram (n ≥ 1) occurs twice in the output. */
export function noRepeatNgram(n: number): Attribute {
  positiveInt(n, 'no-repeat-ngram n', 1);
  return { spec: { kind: 'no-repeat-ngram', n }, label: (t) => hasNoRepeatedNgram(t, n) };
}

/** Any user test; `name` is what the saved classifier records. */
export function customAttribute(name: string, label: (tokens: number[]) => boolean): Attribute {
  if (typeof label !== 'function') throw new ConfigError(`custom attribute '${name}' needs a labelling function, got ${typeof label}`);
  return { spec: { kind: 'custom', name }, label };
}

/** Short human-readable name ("non-empty", "length>=5", …). */
export function attributeName(spec: AttributeSpec): string {
  switch (spec.kind) {
    case 'non-empty': return 'non-empty';
    case 'min-length': return `length>=${spec.length}`;
    case 'length': return `length=${spec.length}`;
    case 'no-repeat-ngram': return `no-repeat-${spec.n}gram`;
    case 'custom': return spec.name;
  }
}

/** Rebuild a built-in labeller from its spec; a custom one only when `custom` (the function) is given. */
export function attributeFromSpec(spec: AttributeSpec, custom?: (tokens: number[]) => boolean): Attribute | undefined {
  const s = spec as { kind?: unknown; length?: unknown; n?: unknown; name?: unknown };
  switch (s.kind) {
    case 'non-empty': return nonEmpty();
    case 'min-length': return minLength(s.length as number);
    case 'length': return exactLength(s.length as number);
    case 'no-repeat-ngram': return noRepeatNgram(s.n as number);
    case 'custom': return custom ? customAttribute(String(s.name), custom) : undefined;
    default:
      throw new ConfigError(`unknown attribute kind ${JSON.stringify(s.kind)}`,
        'use one of non-empty, min-length, length, no-repeat-ngram, custom');
  }
}
