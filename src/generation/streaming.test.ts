/**
 * Streaming: the pieces concatenate to the decoded output (a byte-level tokenizer splits multi-byte
 * characters across tokens, so the decoder must hold back U+FFFD), whitespace clean-up never needs taking
 * back, breaking out of the iterator stops the generation with nothing leaked, and stop strings cut the
 * text (and the stream) right after the string even inside a merged token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { generate } from './generate.js';
import { IncrementalDecoder, TextStreamer, generateStream } from './streaming.js';
import { EOS, LD_DOT_A, byteTokenizer, bytesOf, scriptedModel } from './text_fixtures.test.js';

await initBackend();
const tok = byteTokenizer();
const TEXT = 'héllo wörld → 12€!';

test('the byte tokenizer splits multi-byte characters (fixture check)', () => {
  const ids = bytesOf('é€');
  assert.equal(ids.length, 5);
  assert.equal(tok.decode(ids), 'é€');
  assert.equal(tok.decode(ids.slice(0, 1)), '\uFFFD');
  assert.equal(tok.decode([LD_DOT_A]), 'ld. a');
});

test('IncrementalDecoder holds back incomplete characters and trailing whitespace', () => {
  const dec = new IncrementalDecoder(tok);
  const [e1, e2] = bytesOf('é');
  assert.equal(dec.push([104]), 'h');
  assert.equal(dec.push([e1]), '');
  assert.equal(dec.push([e2]), 'é');
  assert.equal(dec.push([32]), '');
  assert.equal(dec.push([120]), ' x');
  assert.equal(dec.flush(), '');
  // A decoder that cleans " ." into "." (clean_up_tokenization_spaces): the space was never emitted.
  const words = ['hello', ' ', '.'];
  const clean = new IncrementalDecoder({ decode: (ids: number[]) => ids.map((i) => words[i]).join('').replace(/ \./g, '.') });
  const pieces = [clean.push([0]), clean.push([1]), clean.push([2]), clean.flush()];
  assert.deepEqual(pieces, ['hello', '', '.', '']);
});

test('generateStream pieces concatenate to the decoded output, multi-byte characters included', async () => {
  const prompt = 'Q:';
  const model = scriptedModel(bytesOf(TEXT), bytesOf(prompt).length);
  const before = tf.memory().numTensors;
  const pieces: string[] = [];
  for await (const piece of generateStream(model, tok, prompt, { max_new_tokens: 40, eos_token_id: EOS })) pieces.push(piece);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(pieces.join(''), TEXT);
  assert.ok(pieces.length > 5);
  assert.ok(pieces.every((p) => p.length > 0 && !p.includes('\uFFFD')), JSON.stringify(pieces));
  // The same text as generate()'s decoded output.
  const full = await generate(model, prompt, { tokenizer: tok, max_new_tokens: 40, eos_token_id: EOS });
  assert.equal(full.texts![0], TEXT);
  assert.equal(tok.decode(full.newTokens[0], { skipSpecialTokens: true }), TEXT);
});

test('TextStreamer callback: stable pieces, then one final call', async () => {
  const model = scriptedModel(bytesOf(TEXT), 1);
  const calls: [string, boolean][] = [];
  const streamer = new TextStreamer(tok, { onText: (piece, final) => calls.push([piece, final]) });
  const out = await generate(model, [[65]], { tokenizer: tok, streamer, max_new_tokens: 40, eos_token_id: EOS });
  assert.equal(calls.map((c) => c[0]).join(''), TEXT);
  assert.deepEqual(calls.filter((c) => c[1]).length, 1);
  assert.equal(calls[calls.length - 1][1], true);
  assert.equal(out.texts![0], TEXT);
  await assert.rejects(generate(model, [[65], [66]], { tokenizer: tok, streamer, max_new_tokens: 4 }), /a streamer follows one sequence/);
});

test('breaking out of the stream aborts the generation and frees everything', async () => {
  const long = bytesOf('abcdefghijklmnopqrstuvwxyz'.repeat(3));
  const model = scriptedModel(long, 1);
  const before = tf.memory().numTensors;
  let got = '';
  for await (const piece of generateStream(model, tok, [65], { max_new_tokens: 70 })) {
    got += piece;
    if (got.length >= 3) break;
  }
  assert.equal(tf.memory().numTensors, before);
  assert.ok(model.calls < 20, `generation went on after the consumer left (${model.calls} forwards)`);
  // An outside signal ends the stream too.
  const ctrl = new AbortController();
  let n = 0;
  for await (const piece of generateStream(model, tok, [65], { max_new_tokens: 70, signal: ctrl.signal })) {
    n += piece.length;
    if (n >= 2) ctrl.abort();
  }
  assert.ok(n < 10);
  assert.equal(tf.memory().numTensors, before);
});

test('stop strings: generation stops, text and stream end right after the string (inside a merged token)', async () => {
  // "wor" + "ld. a" + "gain": the stop string "world." ends inside the merged token, which overhangs by " a".
  const script = [...bytesOf('wor'), LD_DOT_A, ...bytesOf('gain')];
  const model = scriptedModel(script, 1);
  const out = await generate(model, [[65]], { tokenizer: tok, stop_strings: ['world.'], max_new_tokens: 20, eos_token_id: EOS });
  assert.deepEqual(out.newTokens[0], [...bytesOf('wor'), LD_DOT_A]);
  assert.deepEqual(out.finishReason, ['stop']);
  assert.equal(out.texts![0], 'world.');
  const pieces: string[] = [];
  for await (const p of generateStream(model, tok, [65], { stop_strings: 'world.', max_new_tokens: 20 })) pieces.push(p);
  assert.equal(pieces.join(''), 'world.');
  // A stop string across byte tokens: "o w" in "hello world".
  const plain = scriptedModel(bytesOf('hello world'), 1);
  const cut = await generate(plain, [[65]], { tokenizer: tok, stop_strings: ['o w', 'zzz'], max_new_tokens: 20 });
  assert.equal(cut.texts![0], 'hello w');
  assert.equal(cut.newTokens[0].length, 7);
  await assert.rejects(generate(plain, [[65]], { stop_strings: 'x', max_new_tokens: 3 }), /stop_strings needs a tokenizer/);
});
