import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFillMask } from './score.js';

test('fill-mask tables escape newlines and tabs in tokens and filled sequences, one line per candidate', () => {
  const out = formatFillMask({
    masks: [{ position: 2, candidates: [
      { token: '\n', token_id: 14, score: 0.5, sequence: 'The\n is small.' },
      { token: '\t', token_id: 13, score: 0.25, sequence: 'The\t is small.' },
    ] }],
  } as Parameters<typeof formatFillMask>[0]);
  const lines = out.split('\n');
  assert.equal(lines[0], 'mask 1 (token position 2)');
  assert.equal(lines.length, 5, 'title, header, rule and two rows');
  assert.ok(lines[3].includes('The\\n is small.') && lines[3].includes('\\n'), lines[3]);
  assert.ok(lines[4].includes('The\\t is small.'), lines[4]);
});
