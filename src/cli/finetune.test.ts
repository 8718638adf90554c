/**
 * `finetune`, `eval` and `merge-lora` end to end, as a user runs them (child processes, a temp folder,
 * tiny seeded models written with their tokenizers): a classifier learns "does the letter q occur" to
 * >= 95% from a masked-LM checkpoint; LM and MLM losses fall; `eval` of the saved folder reproduces the
 * final evaluation loss exactly; a LoRA adapter merged by merge-lora gives the outputs of base + adapter;
 * Ctrl-C keeps a checkpoint and --resume finishes with the same weights as an uninterrupted run; bad
 * data and bad output folders fail with clear messages and change nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { Rng } from '../backend/rng.js';
import { fromPretrained } from '../models/pretrained.js';
import type { SequenceClassifier } from '../models/classification.js';
import { parseJsonLines } from '../training/metrics.js';
import { loadLora } from '../training/lora/peft.js';
import { writeTinyModel } from '../training/tiny_fixture.test.js';
import { checkOutputDir, loadClassifier } from './finetune_common.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../bin/makemost.js', import.meta.url));
const ENV = { ...process.env, MAKEMOST_BACKEND: 'wasm' };
let cwd = '';

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd, env: ENV, maxBuffer: 1 << 24 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

async function json(...args: string[]): Promise<Record<string, unknown>> {
  const r = await cli(...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const LETTERS = 'abcdefghijklmnoprstuvwxyz'.split(''); // no q

/** "Does q occur": 4–9 random letters, q put in half of them; labels as names. */
function qTask(n: number, seed: number): string {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const words = Array.from({ length: 4 + rng.int(6) }, () => LETTERS[rng.int(LETTERS.length)]);
    if (i % 2) words[rng.int(words.length)] = 'q';
    return JSON.stringify({ text: words.join(' '), label: i % 2 ? 'yes' : 'no' });
  }).join('\n') + '\n';
}

function lmText(n: number, seed: number): string {
  const rng = new Rng(seed);
  const phrases = ['the cat sat', 'a dog ran', 'the bird flew', 'my fish swam'];
  return Array.from({ length: n }, () => Array.from({ length: 3 }, () => phrases[rng.int(4)]).join(' ') + '.').join('\n') + '\n';
}

before(async () => {
  cwd = mkdtempSync(join(tmpdir(), 'makemost-ft-'));
  await initBackend();
  await writeTinyModel(join(cwd, 'bert'), 'bert');
  await writeTinyModel(join(cwd, 'gpt2'), 'gpt2');
  writeFileSync(join(cwd, 'train.jsonl'), qTask(400, 1));
  writeFileSync(join(cwd, 'val.jsonl'), qTask(200, 2));
  writeFileSync(join(cwd, 'lm.txt'), lmText(200, 3));
  writeFileSync(join(cwd, 'lm_val.txt'), lmText(30, 4));
  const rng = new Rng(5);
  const pats = ['a b c d', 'e f g h', 'i j k l', 'm n o p'];
  const lines = (n: number) => Array.from({ length: n }, () => `${pats[rng.int(4)]} ${pats[rng.int(4)]}`).join('\n') + '\n';
  writeFileSync(join(cwd, 'mlm.txt'), lines(300));
  writeFileSync(join(cwd, 'mlm_val.txt'), lines(40));
});
after(() => rmSync(cwd, { recursive: true, force: true }));

const losses = (dir: string) => parseJsonLines(readFileSync(join(cwd, dir, 'metrics.jsonl'), 'utf8')).filter((r) => typeof r.loss === 'number').map((r) => r.loss as number);

test('classification from a masked-LM checkpoint learns "does q occur" (>= 95%); eval of the saved folder reproduces the loss exactly', async () => {
  const r = await json('finetune', 'bert', '--data', 'train.jsonl', '--validation', 'val.jsonl', '--task', 'classification', '--out', 'cls', '--epochs', '3', '--lr', '3e-3', '--batch-size', '16', '--warmup-ratio', '0.1', '--eval-steps', '25', '--logging-steps', '5');
  const ev = r.eval as Record<string, number>;
  assert.ok(ev.eval_accuracy >= 0.95, `accuracy ${ev.eval_accuracy}`);
  assert.equal(r.saved, 'model');
  assert.equal(r.stopped_by, 'max_steps');
  assert.equal(r.global_step, 75);
  const files = readdirSync(join(cwd, 'cls'));
  for (const f of ['config.json', 'model.safetensors', 'vocab.txt', 'tokenizer_config.json', 'metrics.jsonl', 'loss_curve.svg', 'eval_results.json', 'training_args.json', 'checkpoint-75']) assert.ok(files.includes(f), `${f} in ${files}`);
  const config = JSON.parse(readFileSync(join(cwd, 'cls', 'config.json'), 'utf8'));
  assert.deepEqual(config.architectures, ['BertForSequenceClassification']);
  assert.deepEqual(config.id2label, { 0: 'no', 1: 'yes' }, 'labels sorted by name');
  const records = parseJsonLines(readFileSync(join(cwd, 'cls', 'metrics.jsonl'), 'utf8'));
  assert.equal(records.filter((x) => typeof x.loss === 'number').length, 15);
  assert.deepEqual(records.filter((x) => typeof x.eval_loss === 'number').map((x) => x.step), [25, 50, 75, 75]);
  const svg = readFileSync(join(cwd, 'cls', 'loss_curve.svg'), 'utf8');
  assert.match(svg, /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  assert.equal(/data-series="train loss"[^>]*points="([^"]*)"/.exec(svg)![1].split(' ').length, 15);
  const e = await json('eval', 'cls', '--data', 'val.jsonl', '--task', 'classification', '--batch-size', '16');
  assert.deepEqual(Object.keys(e).sort(), ['accuracy', 'examples', 'f1', 'loss', 'model', 'task']);
  assert.equal(e.loss, ev.eval_loss, 'save then load: the evaluation loss is reproduced exactly');
  assert.equal(e.accuracy, ev.eval_accuracy);
  assert.equal(e.f1, ev.eval_f1);
  assert.equal(e.examples, 200);
});

test('causal LM: the loss falls; eval gives loss and sliding-window perplexity', async () => {
  const r = await json('finetune', 'gpt2', '--data', 'lm.txt', '--validation', 'lm_val.txt', '--task', 'lm', '--out', 'lm', '--max-steps', '40', '--lr', '3e-3', '--batch-size', '8', '--block-size', '32', '--logging-steps', '5', '--quiet');
  const l = losses('lm');
  assert.ok(l.at(-1)! < l[0] * 0.7, `loss ${l[0]} → ${l.at(-1)}`);
  const before = await json('eval', 'gpt2', '--data', 'lm_val.txt', '--task', 'lm', '--block-size', '32', '--batch-size', '8');
  const afterwards = await json('eval', 'lm', '--data', 'lm_val.txt', '--task', 'lm', '--block-size', '32', '--batch-size', '8', '--stride', '8');
  assert.deepEqual(Object.keys(afterwards).sort(), ['loss', 'model', 'perplexity', 'scored_tokens', 'stride', 'task', 'window']);
  assert.equal(afterwards.loss, (r.eval as Record<string, number>).eval_loss);
  assert.equal(afterwards.window, 32);
  assert.equal(afterwards.stride, 8);
  assert.ok((afterwards.perplexity as number) < (before.perplexity as number) / 2, `perplexity ${before.perplexity} → ${afterwards.perplexity}`);
});

test('masked LM: the loss falls; eval gives the masked loss and pseudo-perplexity', async () => {
  await json('finetune', 'bert', '--data', 'mlm.txt', '--validation-split', '0.1', '--task', 'mlm', '--out', 'mlm', '--max-steps', '60', '--lr', '3e-3', '--batch-size', '16', '--logging-steps', '10', '--quiet');
  const l = losses('mlm');
  assert.ok(l.at(-1)! < l[0] * 0.75, `loss ${l[0]} → ${l.at(-1)}`);
  const before = await json('eval', 'bert', '--data', 'mlm_val.txt', '--task', 'mlm', '--batch-size', '32');
  const afterwards = await json('eval', 'mlm', '--data', 'mlm_val.txt', '--task', 'mlm', '--batch-size', '32');
  assert.deepEqual(Object.keys(afterwards).sort(), ['loss', 'masked_tokens', 'model', 'pseudo_perplexity', 'scored_tokens', 'task']);
  assert.equal(afterwards.scored_tokens, 40 * 8, 'every letter of every line, none of [CLS]/[SEP]');
  assert.ok((afterwards.pseudo_perplexity as number) < (before.pseudo_perplexity as number) / 2);
  assert.ok((afterwards.loss as number) < (before.loss as number));
});

test('LoRA: finetune saves a PEFT adapter; merge-lora gives the outputs of base + adapter (<= 1e-5)', async () => {
  const r = await json('finetune', 'gpt2', '--data', 'train.jsonl', '--task', 'classification', '--mode', 'lora:r=4,alpha=8', '--out', 'lora', '--max-steps', '20', '--lr', '1e-2', '--batch-size', '16', '--quiet');
  assert.equal(r.saved, 'adapter');
  assert.ok(!existsSync(join(cwd, 'lora', 'model.safetensors')));
  const cfg = JSON.parse(readFileSync(join(cwd, 'lora', 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.task_type, 'SEQ_CLS');
  assert.equal(cfg.fan_in_fan_out, true, "GPT-2's Conv1D");
  const m = await json('merge-lora', 'gpt2', 'lora', '--out', 'merged');
  assert.equal(m.merged_layers, 2);
  await initBackend();
  const ids = [[69, 70, 71, 72, 73], [74, 75, 256, 256, 256]];
  const mask = [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]];
  const space = { kind: 'name' as const, problemType: 'single_label_classification' as const, numLabels: 2, id2label: { 0: 'no', 1: 'yes' }, label2id: { no: 0, yes: 1 } };
  const { model: adapted } = await loadClassifier(join(cwd, 'gpt2'), space, { seed: 123, padTokenId: 256 });
  await loadLora(adapted, join(cwd, 'lora'));
  const merged = (await fromPretrained(join(cwd, 'merged'), 'sequence-classification')) as SequenceClassifier;
  const a = tf.tidy(() => adapted.forward(ids, { attentionMask: mask }).logits.arraySync() as number[][]);
  const b = tf.tidy(() => merged.forward(ids, { attentionMask: mask }).logits.arraySync() as number[][]);
  const diff = Math.max(...a.flat().map((x, i) => Math.abs(x - b.flat()[i])));
  assert.ok(diff <= 1e-5, `max |Δlogits| ${diff}`);
  assert.ok(Math.max(...a.flat().map(Math.abs)) > 0.01, 'the head is not trivially zero');
  adapted.dispose();
  merged.dispose();
  const e1 = await json('eval', 'lora', '--data', 'val.jsonl', '--task', 'classification');
  const e2 = await json('eval', 'merged', '--data', 'val.jsonl', '--task', 'classification');
  assert.ok(Math.abs((e1.loss as number) - (e2.loss as number)) < 1e-5);
});

test('Ctrl-C stops cleanly with a checkpoint; --resume ends with the weights of an uninterrupted run', async () => {
  const args = ['finetune', 'gpt2', '--data', 'lm.txt', '--task', 'lm', '--max-steps', '60', '--lr', '1e-3', '--batch-size', '4', '--block-size', '16', '--logging-steps', '1', '--seed', '3'];
  assert.equal((await cli(...args, '--out', 'straight', '--quiet')).code, 0);
  const child = spawn(process.execPath, [BIN, ...args, '--out', 'cut', '--json'], { cwd, env: ENV });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let sent = false;
  child.stderr.on('data', (d: Buffer) => {
    if (!sent && /step 2\/60/.test(d.toString())) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((res) => child.on('close', res));
  assert.equal(code, 130);
  const r = JSON.parse(stdout) as Record<string, unknown>;
  assert.equal(r.stopped_by, 'signal');
  assert.ok((r.global_step as number) < 60);
  assert.equal(r.saved, null);
  assert.ok(existsSync(join(cwd, 'cut', `checkpoint-${r.global_step}`, 'model.safetensors')));
  assert.ok(!existsSync(join(cwd, 'cut', 'model.safetensors')), 'no final model from an interrupted run');
  const resumed = await json(...args, '--out', 'cut', '--resume', '--quiet');
  assert.equal(resumed.global_step, 60);
  assert.ok(readFileSync(join(cwd, 'cut', 'model.safetensors')).equals(readFileSync(join(cwd, 'straight', 'model.safetensors'))), 'bit-identical weights');
});

test('bad data: empty file, missing column, label outside num_labels, malformed and non-UTF-8 lines', async () => {
  writeFileSync(join(cwd, 'empty.jsonl'), '\n');
  writeFileSync(join(cwd, 'cols.csv'), 'sentence,y\nhello,1\n');
  writeFileSync(join(cwd, 'ids.jsonl'), '{"text": "a", "label": 1}\n{"text": "b", "label": 5}\n');
  writeFileSync(join(cwd, 'broken.jsonl'), '{"text": "a", "label": 1}\n{"text": "b", "label"\n');
  writeFileSync(join(cwd, 'latin1.txt'), Buffer.from([...Buffer.from('fine\n'), 0x63, 0x61, 0x66, 0xe9, 0x0a]));
  const cases: [string[], RegExp][] = [
    [['bert', '--data', 'empty.jsonl', '--task', 'lm'], /the data file empty\.jsonl holds no examples/],
    [['bert', '--data', 'cols.csv', '--task', 'classification'], /cols\.csv has no column 'text' \(the text column\); its columns are: sentence, y/],
    [['cls', '--data', 'ids.jsonl', '--task', 'classification'], /ids\.jsonl line 2: label 5 is outside the 2 classes/],
    [['bert', '--data', 'broken.jsonl', '--task', 'classification'], /broken\.jsonl line 2 is not valid JSON/],
    [['gpt2', '--data', 'latin1.txt', '--task', 'lm'], /latin1\.txt line 2 is not valid UTF-8/],
  ];
  for (const [args, message] of cases) {
    const r = await cli('finetune', ...args, '--out', 'never');
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /HINT: /);
    assert.deepEqual(existsSync(join(cwd, 'never')) ? readdirSync(join(cwd, 'never')) : [], [], 'nothing written');
  }
});

test('bad output folders: unwritable, or holding an earlier run: a clear error before training, nothing lost', async () => {
  writeFileSync(join(cwd, 'a-file'), 'x');
  const r1 = await cli('finetune', 'bert', '--data', 'mlm.txt', '--task', 'mlm', '--out', 'a-file/out');
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /cannot create the output folder 'a-file\/out'/);
  const before = readFileSync(join(cwd, 'cls', 'model.safetensors'));
  const listing = readdirSync(join(cwd, 'cls')).sort();
  const r2 = await cli('finetune', 'bert', '--data', 'train.jsonl', '--task', 'classification', '--out', 'cls');
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /'cls' already holds an earlier model or run \(checkpoint-75, config\.json, metrics\.jsonl, model\.safetensors\); nothing was changed/);
  assert.match(r2.stderr, /HINT: pass --resume/);
  assert.ok(readFileSync(join(cwd, 'cls', 'model.safetensors')).equals(before));
  assert.deepEqual(readdirSync(join(cwd, 'cls')).sort(), listing);
  const r3 = await cli('merge-lora', 'gpt2', 'lora', '--out', 'cls');
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /already holds an earlier model/);
});

test('a full disk is refused up front with the space needed; the folder is left as it was', () => {
  const dir = join(cwd, 'small-disk');
  assert.throws(() => checkOutputDir(dir, { neededBytes: 5e6, freeBytes: () => 1e5 }), /'.*small-disk' has 0\.1 MB free, but the run needs about 5\.0 MB.*HINT: free some space/s);
  assert.deepEqual(readdirSync(dir), []);
  checkOutputDir(dir, { neededBytes: 5e6, freeBytes: () => 1e7 });
});
