/**
 * Option-value parsers for commander: each returns the number or throws commander's
 * InvalidArgumentError, which it prints as "option '--x <n>' argument '…' is invalid. expected …".
 */
import { InvalidArgumentError } from 'commander';

function numeric(v: string): number {
  return v.trim() === '' ? NaN : Number(v);
}

/** An integer >= `min`. */
export function intAtLeast(min: number): (v: string) => number {
  return (v) => {
    const n = numeric(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

/** An integer >= 1. */
export function positiveInt(v: string): number {
  const n = numeric(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** An integer >= 0. */
export function nonNegativeInt(v: string): number {
  const n = numeric(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

/** A finite number >= 0. */
export function nonNegativeNumber(v: string): number {
  const n = numeric(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}

/** Any finite number. */
export function number(v: string): number {
  const n = numeric(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}
