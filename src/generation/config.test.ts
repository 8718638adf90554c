/**
 * GenerationConfig: HF's defaults and precedence (defaults ← generation_config.json ← user; token ids fall
 * back to config.json), and every rejected contradiction names its option.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, UnsupportedError } from '../errors.js';
import type { ModelDims } from '../models/types.js';
import { GENERATION_DEFAULTS, eosIds, maxNewTokensFor, resolveGenerationConfig, type GenerationOptions } from './config.js';

const dims: ModelDims = { layers: 2, hidden: 32, heads: 4, kvHeads: 4, headDim: 8, vocab: 100, maxPositions: 64 };

function rejects(options: Record<string, unknown>, pattern: RegExp, cls: typeof ConfigError | typeof UnsupportedError = ConfigError, json?: Record<string, unknown>): void {
  assert.throws(() => resolveGenerationConfig(options as GenerationOptions, { dims, generationConfigJson: json }), (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

test('HF defaults', () => {
  const c = resolveGenerationConfig({});
  // GenerationConfig.__init__: max_length 20, top_k 50, temperature/top_p/typical_p 1, greedy, one beam.
  assert.equal(c.max_length, 20);
  assert.equal(c.top_k, 50);
  assert.equal(c.temperature, 1);
  assert.equal(c.top_p, 1);
  assert.equal(c.typical_p, 1);
  assert.equal(c.do_sample, false);
  assert.equal(c.num_beams, 1);
  assert.equal(c.early_stopping, false);
  assert.equal(c.max_new_tokens, undefined);
  assert.equal(c.min_p, undefined);
});

test('precedence: defaults ← generation_config.json ← user; ids fall back to config.json', () => {
  const c = resolveGenerationConfig({ temperature: 0.5 }, {
    generationConfigJson: { do_sample: true, temperature: 0.6, top_p: 0.9, eos_token_id: [1, 2], transformers_version: '4.40.0', use_cache: true },
    modelConfig: { eos_token_id: 7, bos_token_id: 3, pad_token_id: null },
  });
  assert.equal(c.do_sample, true);
  assert.equal(c.temperature, 0.5);
  assert.equal(c.top_p, 0.9);
  assert.deepEqual(c.eos_token_id, [1, 2]);
  assert.equal(c.bos_token_id, 3);
  assert.equal(c.pad_token_id, undefined);
  assert.deepEqual(eosIds(c), [1, 2]);
  assert.deepEqual(eosIds(resolveGenerationConfig({}, { modelConfig: { eos_token_id: 7 } })), [7]);
  // The file's sampling settings do not clash with a user who asks for greedy decoding.
  assert.equal(resolveGenerationConfig({ do_sample: false }, { generationConfigJson: { do_sample: true, temperature: 0.6 } }).do_sample, false);
});

test('unknown option names are errors that suggest the close match', () => {
  rejects({ topP: 0.9 }, /unknown generation option 'topP'[\s\S]*top_p/);
  rejects({ max_new_token: 5 }, /max_new_tokens/);
  rejects({ num_beam: 2 }, /num_beams/);
  rejects({}, /generation_config\.json: unknown generation option 'frobnicate'/, ConfigError, { frobnicate: 1 });
});

test('HF options we do not implement are rejected unless at their no-op value', () => {
  rejects({ num_beam_groups: 2 } as never, /num_beam_groups/, UnsupportedError);
  rejects({ penalty_alpha: 0.6 } as never, /penalty_alpha/, UnsupportedError);
  assert.doesNotThrow(() => resolveGenerationConfig({ use_cache: true, num_beam_groups: 1 } as never));
});

test('range and type errors name the option and the bound', () => {
  rejects({ do_sample: true, top_p: 0 }, /top_p: expected a number in \(0, 1\]/);
  rejects({ do_sample: true, top_p: 1.5 }, /top_p/);
  rejects({ do_sample: true, typical_p: 0 }, /typical_p: expected a number in \(0, 1\]/);
  rejects({ do_sample: true, min_p: 1.2 }, /min_p: expected a number in \[0, 1\]/);
  rejects({ do_sample: true, temperature: 0 }, /temperature: expected a number in \(0, ∞\)[\s\S]*do_sample: false/);
  rejects({ do_sample: true, top_k: -1 }, /top_k: expected an integer >= 0/);
  rejects({ repetition_penalty: 0 }, /repetition_penalty/);
  rejects({ max_new_tokens: 0 }, /max_new_tokens: expected an integer >= 1/);
  rejects({ early_stopping: 'sometimes' } as never, /early_stopping/);
  rejects({ do_sample: true, epsilon_cutoff: 1 }, /epsilon_cutoff/);
  rejects({ eos_token_id: 100 }, /eos_token_id: expected token ids in \[0, 100\)/);
  rejects({ bad_words_ids: [[]] }, /bad_words_ids/);
  rejects({ stop_strings: [''] }, /stop_strings/);
  rejects({ do_sample: 'yes' } as never, /do_sample/);
});

test('contradictions between options', () => {
  rejects({ num_beams: 2, num_return_sequences: 3 }, /num_return_sequences: expected at most num_beams \(2\)/);
  rejects({ num_return_sequences: 2 }, /num_return_sequences[\s\S]*do_sample: true/);
  rejects({ num_beams: 2, do_sample: true }, /beam sampling/, UnsupportedError);
  rejects({ temperature: 0.7 }, /temperature = 0.7 only acts when sampling[\s\S]*HINT: set do_sample: true/);
  rejects({ top_k: 5 }, /top_k/);
  rejects({ min_p: 0.1 }, /min_p/);
  rejects({ length_penalty: 2 }, /length_penalty[\s\S]*num_beams > 1/);
  rejects({ early_stopping: true }, /early_stopping[\s\S]*num_beams > 1/);
  assert.doesNotThrow(() => resolveGenerationConfig({ num_beams: 4, num_return_sequences: 4, early_stopping: 'never', length_penalty: 0.5 }));
  assert.doesNotThrow(() => resolveGenerationConfig({ do_sample: true, num_return_sequences: 5, temperature: 0.7 }));
});

test('max_new_tokens / max_length against the prompt and the context', () => {
  const c = (o: GenerationOptions) => resolveGenerationConfig(o, { dims });
  assert.equal(maxNewTokensFor(c({}), 5, 64), 15); // HF: max_length 20 − prompt 5
  assert.equal(maxNewTokensFor(c({ max_new_tokens: 7, max_length: 9 }), 5, 64), 7); // max_new_tokens wins
  assert.throws(() => maxNewTokensFor(c({}), 20, 64), /max_length = 20 leaves no room[\s\S]*max_new_tokens/);
  assert.throws(() => maxNewTokensFor(c({ max_new_tokens: 60 }), 10, 64), /max_new_tokens \(60\)[\s\S]*context of 64[\s\S]*max_new_tokens <= 54/);
  assert.equal(GENERATION_DEFAULTS.max_length, 20);
});
