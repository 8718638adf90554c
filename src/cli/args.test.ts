import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { intAtLeast, nonNegativeInt, nonNegativeNumber, number, positiveInt } from './args.js';

test('option parsers accept what they name and reject the rest, the empty string included', () => {
  assert.equal(positiveInt('3'), 3);
  assert.equal(nonNegativeInt('0'), 0);
  assert.equal(nonNegativeNumber('0.5'), 0.5);
  assert.equal(number('-1e-3'), -0.001);
  assert.equal(intAtLeast(2)('2'), 2);
  const bad: [(v: string) => number, string][] = [
    [positiveInt, '0'], [positiveInt, '1.5'], [positiveInt, ''], [nonNegativeInt, '-1'], [nonNegativeInt, ' '],
    [nonNegativeNumber, '-0.1'], [nonNegativeNumber, 'x'], [number, ''], [number, 'Infinity'], [intAtLeast(2), '1'],
  ];
  for (const [f, v] of bad) assert.throws(() => f(v), InvalidArgumentError, `${f.name}(${JSON.stringify(v)})`);
});
