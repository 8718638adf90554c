/**
 * The HSO commands on the tiny random GPT-2 folder: plain streaming perplexity over one window equals
 * `score`'s perplexity (a full forward pass); HSO at learning rate 0 reports no gain; the text output
 * names the gain and time factor; few-shot classification reports accuracies that match its own
 * predictions, with and without HSO and calibration; bad example files fail with the line at fault.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { initBackend } from '../backend/index.js';
import { registerHsoCommands } from './hso.js';
import { scoreText } from './score.js';
import { ensureTinyModels } from './tiny.js';

await initBackend();
let root = '';
let gpt2 = '';
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'makemost-hso-'));
  gpt2 = (await ensureTinyModels(root)).gpt2;
});
after(() => rmSync(root, { recursive: true, force: true }));

async function run(...args: string[]): Promise<string> {
  let out = '';
  const p = new Command('makemost');
  registerHsoCommands(p, (s) => (out += s));
  await p.parseAsync(['node', 'makemost', ...args]);
  return out;
}

const TEXT = 'the cat sat on the mat. the cat sat on the mat. the dog sat on the log.';

test('perplexity: one window equals score; lr 0 gives no gain; text output has gain and time factor', async () => {
  const data = join(root, 'text.txt');
  writeFileSync(data, TEXT);
  const whole = JSON.parse(await run('perplexity', gpt2, '--data', data, '--window', '100', '--json', '--hso', '--lr', '0'));
  const ref = await scoreText(gpt2, TEXT, { bos: true });
  assert.equal(whole.tokens, ref.scored_tokens);
  assert.ok(Math.abs(whole.plain.perplexity - ref.perplexity) < 1e-9 * ref.perplexity, `${whole.plain.perplexity} vs score ${ref.perplexity}`);
  assert.equal(whole.hso.perplexity, whole.plain.perplexity);
  assert.equal(whole.gain, 0);
  const windows = JSON.parse(await run('perplexity', gpt2, '--data', data, '--window', '16', '--max-cache', '40', '--hso', '--lr', '1e-2', '--update-current-window', '--json'));
  assert.equal(windows.plain.windows, Math.ceil(ref.scored_tokens / 16));
  assert.equal(windows.max_cache, 40);
  assert.ok(windows.time_factor > 0 && Number.isFinite(windows.hso.perplexity));
  assert.notEqual(windows.hso.perplexity, windows.plain.perplexity);
  const text = await run('perplexity', gpt2, '--data', data, '--window', '16', '--hso');
  assert.match(text, /plain streaming/);
  assert.match(text, /gain: .* perplexity .*%\); HSO took .*× the time of plain streaming/);
  const plainOnly = await run('perplexity', gpt2, '--data', data, '--window', '16');
  assert.doesNotMatch(plainOnly, /HSO/);
});

test('classify-few-shot: accuracy with and without HSO, calibrated, from JSON-lines files', async () => {
  const train = join(root, 'train.jsonl');
  const testFile = join(root, 'test.jsonl');
  writeFileSync(train, ['{"text": "great fun", "label": "good"}', '{"text": "awful", "label": "bad"}', '', '{"text": "lovely", "label": 0}'].join('\n'));
  const gold = [0, 1, 1, 0];
  writeFileSync(testFile, ['nice', 'boring', 'terrible', 'superb'].map((t, i) => JSON.stringify({ text: t, label: gold[i] === 0 ? 'good' : 'bad' })).join('\n'));
  const args = ['classify-few-shot', gpt2, '--train', train, '--test', testFile, '--template', 'Review: {text} Verdict: {label}', '--labels', 'good,bad'];
  const r = JSON.parse(await run(...args, '--hso', '--steps', '2', '--lr', '1e-2', '--calibrate', '--json'));
  assert.equal(r.demonstrations, 3);
  assert.deepEqual(r.results.map((x: { steps: number }) => x.steps), [0, 2]);
  for (const x of r.results) {
    assert.ok(x.calibrated_accuracy >= 0 && x.calibrated_accuracy <= 1);
    assert.equal(x.calibrated_accuracy, x.predictions.filter((p: number, i: number) => p === gold[i]).length / gold.length);
  }
  assert.equal(r.results[1].prompt_loss.length, 3);
  assert.ok(r.results[1].prompt_loss[2] < r.results[1].prompt_loss[0]);
  const text = await run(...args, '--shots', '1', '--separator', '\\n\\n');
  assert.match(text, /1 demonstrations/);
  assert.match(text, /no HSO \(baseline\)/);
  writeFileSync(testFile, '{"text": "x", "label": "meh"}\n');
  await assert.rejects(run(...args), /test\.jsonl line 1: expected \{"text": string, "label": one of good, bad/);
});
