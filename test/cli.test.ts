/**
 * The CLI end to end, as a user runs it (a child process): the demo on a fresh folder, `info` against
 * counts computed by hand, `score` and `fill-mask` against the PyTorch reference, and clean errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, runReference } from './support/torch_ref.js';

const run = promisify(execFile);
const BIN = join(repoRoot(), 'bin', 'makemost.js');
let cwd = '';
before(() => { cwd = mkdtempSync(join(tmpdir(), 'makemost-cli-')); });
after(() => rmSync(cwd, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, MAKEMOST_BACKEND: 'cpu' } });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

function logSoftmaxRow(row: Float32Array | number[]): number[] {
  const m = Math.max(...row);
  const lse = m + Math.log(Array.from(row).reduce((s, x) => s + Math.exp(x - m), 0));
  return Array.from(row, (x) => x - lse);
}

test('the demo writes the tiny random models and runs info, score, fill-mask, generate and mode', async () => {
  const r = await cli('demo');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /RANDOMLY INITIALISED/);
  assert.match(r.stdout, /GPT2LMHeadModel/);
  assert.match(r.stdout, /perplexity/);
  assert.match(r.stdout, /mask 1/);
  assert.match(r.stdout, /mode: /);
});

test('the default command continues prompts with the shipped model by greedy, beam and nucleus decoding', async () => {
  const r = await cli();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /default model .*makemost-gpt-tiny/);
  for (const name of ['greedy', 'beam search, 4 beams', 'nucleus sampling, top_p 0.9']) assert.ok(r.stdout.includes(name), name);
  const g = await cli('generate', '--max-new-tokens', '5', '--json');
  assert.equal(g.code, 0, g.stderr);
  const n = JSON.parse(g.stdout).newTokens[0].length;
  assert.ok(n >= 1 && n <= 5, String(n));
});

test('info --json: parameter count by hand, shapes, tokenizer', async () => {
  const r = await cli('info', join(cwd, '.cache', 'tiny-gpt2'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  const D = 64, L = 2, V = 257, P = 128;
  const perLayer = 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + 2 * D + (D * 4 * D + 4 * D) + (4 * D * D + D);
  assert.equal(info.parameters, V * D + P * D + L * perLayer + 2 * D);
  assert.deepEqual([info.layers, info.hidden_size, info.heads, info.vocab_size, info.context_length], [2, 64, 4, 257, 128]);
  assert.equal(info.weights.dtypes.F32, info.parameters);
  assert.equal(info.tokenizer.special.bos, '<|endoftext|>');
});

test('score --json equals log-softmax of the PyTorch reference logits, token by token', async () => {
  const dir = join(cwd, '.cache', 'tiny-gpt2');
  const r = await cli('score', dir, '--text', 'Hi there', '--json');
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  const ids: number[] = s.tokens.map((t: { id: number }) => t.id);
  assert.equal(ids[0], 256, 'BOS prepended');
  assert.deepEqual(ids.slice(1), [...Buffer.from('Hi there')].map((b) => (b === 32 ? 220 : b - 33)), 'byte-level ids (printable ASCII: id = byte − 33; space = 220)');
  const ref = await runReference(dir, { input_ids: [ids.slice(0, -1)] });
  const V = ref.logits!.shape[2];
  let total = 0;
  for (let t = 1; t < ids.length; t++) {
    const lp = logSoftmaxRow(ref.logits!.data.slice((t - 1) * V, t * V))[ids[t]];
    total += lp;
    assert.ok(Math.abs(lp - s.tokens[t].logprob) < 1e-4, `token ${t}: ${s.tokens[t].logprob} vs ${lp}`);
  }
  assert.ok(Math.abs(total - s.total_logprob) < 1e-3);
  assert.ok(Math.abs(Math.exp(-total / (ids.length - 1)) - s.perplexity) < 1e-3 * s.perplexity);
});

test('fill-mask --json: top-k by probability, equal to the reference softmax at the mask', async () => {
  const dir = join(cwd, '.cache', 'tiny-bert');
  const r = await cli('fill-mask', dir, '--text', 'the capital of france is [MASK].', '--top-k', '4', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.masks.length, 1);
  const { position, candidates } = out.masks[0];
  // [CLS] the capital of france is [MASK] . [SEP]
  assert.equal(position, 6);
  const ids = [2, 5, 8, 6, 11, 7, 4, 18, 3];
  const ref = await runReference(dir, { input_ids: [ids] });
  const V = ref.logits!.shape[2];
  const probs = logSoftmaxRow(ref.logits!.data.slice(position * V, (position + 1) * V)).map(Math.exp);
  const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 4);
  assert.deepEqual(candidates.map((c: { token_id: number }) => c.token_id), order.map((o) => o[1]));
  candidates.forEach((c: { score: number }, i: number) => assert.ok(Math.abs(c.score - order[i][0]) < 1e-5));
});

test('errors are one clear message and exit code 1, never a stack trace', async () => {
  const noMask = await cli('fill-mask', join(cwd, '.cache', 'tiny-bert'), '--text', 'no mask here');
  assert.equal(noMask.code, 1);
  assert.match(noMask.stderr, /contains no \[MASK\] token[\s\S]*HINT/);
  const missing = await cli('info', join(cwd, 'nope'));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /config\.json/);
  assert.doesNotMatch(missing.stderr, /at .*\.js:\d+/);
  const wrongTask = await cli('score', join(cwd, '.cache', 'tiny-bert'), '--text', 'hello');
  assert.equal(wrongTask.code, 1);
  assert.match(wrongTask.stderr, /no causal-lm model/);
  const badK = await cli('fill-mask', join(cwd, '.cache', 'tiny-bert'), '--text', '[MASK]', '--top-k', '0');
  assert.notEqual(badK.code, 0);
  assert.match(badK.stderr, /positive integer/);
});

test('train-attribute-classifier, generate --classifier (ACBS) and degeneracy run end to end', async () => {
  const dir = join(cwd, '.cache', 'tiny-gpt2');
  const prompts = join(cwd, 'prompts.txt');
  writeFileSync(prompts, 'Once upon\nThe cat\n');
  const clf = join(cwd, 'clf');
  const t = await cli('train-attribute-classifier', dir, '--attribute', 'non-empty', '--prompts', prompts, '--samples', '8', '--max-new-tokens', '5', '--epochs', '2', '--out', clf);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /attribute .*non-empty.* holds for [\d.]+% of 16 samples/);
  const g = await cli('generate', dir, '--prompt', 'Once upon', '--num-beams', '2', '--max-new-tokens', '5', '--classifier', clf, '--json');
  assert.equal(g.code, 0, g.stderr);
  const out = JSON.parse(g.stdout);
  assert.equal(out.newTokens.length, 1);
  assert.ok(out.newTokens[0].length > 0 && out.newTokens[0][0] !== 256, 'ACBS with "non-empty" does not return the empty output');
  const d = await cli('degeneracy', dir, '--prompts', prompts, '--beams', '2', '--samples', '2', '--max-new-tokens', '4', '--exact-ms', '3000', '--classifier', clf, '--json');
  assert.equal(d.code, 0, d.stderr);
  const rows = JSON.parse(d.stdout) as { name: string; emptyShare: number; count: number }[];
  assert.deepEqual(rows.map((r) => r.name), ['greedy', 'beam 2', 'sampling ×2', 'exact mode', 'conditional beam 4']);
  assert.equal(rows[0].count, 2);
  assert.equal(rows[2].count, 4);
  for (const r of rows) assert.ok(r.emptyShare >= 0 && r.emptyShare <= 1);
  const table = await cli('degeneracy', dir, '--prompts', prompts, '--beams', '2', '--samples', '0', '--max-new-tokens', '3');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /greedy/);
  const bad = await cli('train-attribute-classifier', dir, '--attribute', 'shiny', '--prompts', prompts);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /non-empty, min-length:L/);
});
