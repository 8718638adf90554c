/** HF model folders: single and sharded checkpoints, missing files, JSON errors, atomic saves. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { openCheckpoint, readConfig, readGenerationConfig, readJsonFile, saveSafetensors } from './hf_folder.js';

function withDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'makemost-hf-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const f32 = (...v: number[]) => ({ shape: [v.length], dtype: 'float32' as const, data: Float32Array.from(v) });

function writeShards(dir: string, index: Record<string, string>): void {
  saveSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { 'a.weight': f32(1, 2), 'b.weight': f32(3) });
  saveSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { 'c.bias': f32(4, 5, 6) });
  fs.writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 24 }, weight_map: index }));
}

const GOOD_INDEX = {
  'a.weight': 'model-00001-of-00002.safetensors',
  'b.weight': 'model-00001-of-00002.safetensors',
  'c.bias': 'model-00002-of-00002.safetensors',
};

test('single model.safetensors: keys, shapes, dtype, values; read after close fails', () => {
  withDir((dir) => {
    saveSafetensors(join(dir, 'model.safetensors'), new Map([['w', { shape: [2, 1], dtype: 'int32' as const, data: Int32Array.of(4, -4) }]]));
    const ck = openCheckpoint(dir);
    assert.equal(ck.format, 'safetensors');
    assert.deepEqual(ck.files, [join(dir, 'model.safetensors')]);
    assert.deepEqual(ck.metadata, { format: 'pt' });
    assert.deepEqual(ck.keys(), ['w']);
    assert.deepEqual(ck.shape('w'), [2, 1]);
    assert.equal(ck.dtype('w'), 'I32');
    assert.deepEqual([...ck.read('w')], [4, -4]);
    ck.close();
    assert.throws(() => ck.read('w'), CheckpointError);
    // A weight file path works too.
    const one = openCheckpoint(join(dir, 'model.safetensors'));
    assert.deepEqual(one.keys(), ['w']);
    one.close();
  });
});

test('sharded index: keys from every shard, read through the right file', () => {
  withDir((dir) => {
    writeShards(dir, GOOD_INDEX);
    const ck = openCheckpoint(dir);
    assert.deepEqual(ck.keys(), ['a.weight', 'b.weight', 'c.bias']);
    assert.deepEqual([...ck.read('c.bias')], [4, 5, 6]);
    assert.deepEqual([...ck.read('a.weight')], [1, 2]);
    assert.equal(ck.files.length, 2);
    assert.throws(() => ck.read('zzz'), /has no tensor 'zzz'/);
    ck.close();
  });
});

test('sharded index: missing shard, key absent from its shard, key in two places, unlisted key', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ ...GOOD_INDEX, 'd.weight': 'model-00003-of-00003.safetensors' }, /shard file\(s\) missing from .*: model-00003-of-00003\.safetensors/],
    [{ ...GOOD_INDEX, 'c.bias': 'model-00001-of-00002.safetensors', 'x': 'model-00002-of-00002.safetensors' },
      /'c\.bias' is mapped to model-00001-of-00002\.safetensors but is not in it.*model-00002-of-00002\.safetensors also holds 'c\.bias', which the index maps to model-00001/],
    [{ 'a.weight': 'model-00001-of-00002.safetensors', 'c.bias': 'model-00002-of-00002.safetensors' },
      /model-00001-of-00002\.safetensors holds 'b\.weight', which the index does not list/],
    [{ ...GOOD_INDEX, 'e': '../elsewhere.safetensors' }, /key 'e' maps to "\.\.\/elsewhere\.safetensors", not a file name in the same folder/],
  ];
  for (const [index, msg] of cases) {
    withDir((dir) => {
      writeShards(dir, index);
      assert.throws(() => openCheckpoint(dir), (e: Error) => {
        assert.ok(e instanceof CheckpointError);
        assert.match(e.message, /model\.safetensors\.index\.json/);
        assert.match(e.message, msg);
        return true;
      });
    });
  }
  withDir((dir) => {
    fs.writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    assert.throws(() => openCheckpoint(dir), (e: Error) => e instanceof CheckpointError && /checkpoint index .* is not valid JSON/.test(e.message));
    fs.writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
    assert.throws(() => openCheckpoint(dir), /has no "weight_map" object/);
  });
});

test('no weights: the error lists what the folder holds', () => {
  withDir((dir) => {
    fs.writeFileSync(join(dir, 'tf_model.h5'), '');
    fs.writeFileSync(join(dir, 'config.json'), '{}');
    assert.throws(() => openCheckpoint(dir), (e: Error) =>
      e instanceof CheckpointError && /expected one of model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin/.test(e.message) &&
      /found config\.json, tf_model\.h5/.test(e.message) && /tf_model\.h5 is not a format we read/.test(e.message));
  });
  assert.throws(() => openCheckpoint('/nonexistent/makemost'), (e: Error) => e instanceof CheckpointError && /does not exist/.test(e.message));
});

test('readJsonFile, readConfig, readGenerationConfig', () => {
  withDir((dir) => {
    assert.throws(() => readJsonFile(join(dir, 'tokenizer.json'), 'tokenizer'),
      (e: Error) => e instanceof ConfigError && /cannot read tokenizer '.*tokenizer\.json': file not found/.test(e.message));
    fs.writeFileSync(join(dir, 'bad.json'), '{"a": 1,}');
    assert.throws(() => readJsonFile(join(dir, 'bad.json'), 'tokenizer'), (e: Error) => e instanceof ConfigError && /tokenizer '.*bad\.json' is not valid JSON/.test(e.message));
    assert.throws(() => readConfig(dir), (e: Error) => e instanceof ConfigError && /has no config\.json/.test(e.message) && /HINT: .*save_pretrained/.test(e.message));
    assert.throws(() => readConfig(join(dir, 'nope')), (e: Error) => e instanceof ConfigError && /does not exist/.test(e.message));
    fs.writeFileSync(join(dir, 'config.json'), '[1]');
    assert.throws(() => readConfig(dir), /must hold a JSON object, found an array/);
    fs.writeFileSync(join(dir, 'config.json'), '{"model_type": "gpt2", "n_layer": 2}');
    assert.deepEqual(readConfig(dir), { model_type: 'gpt2', n_layer: 2 });
    assert.equal(readGenerationConfig(dir), undefined);
    fs.writeFileSync(join(dir, 'generation_config.json'), '{"do_sample": true}');
    assert.deepEqual(readGenerationConfig(dir), { do_sample: true });
  });
});

test('saveSafetensors replaces the file atomically and leaves no temporary files', () => {
  withDir((dir) => {
    const path = join(dir, 'model.safetensors');
    saveSafetensors(path, { x: f32(1) });
    saveSafetensors(path, { y: f32(2, 3) });
    assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
    const ck = openCheckpoint(dir);
    assert.deepEqual(ck.keys(), ['y']);
    ck.close();
    assert.throws(() => saveSafetensors(join(dir, 'missing', 'm.safetensors'), { x: f32(1) }),
      (e: Error) => e instanceof CheckpointError && /cannot write '.*m\.safetensors'/.test(e.message));
    assert.throws(() => saveSafetensors(path, { x: { shape: [2], dtype: 'float32', data: new Float32Array(1) } }), /needs 2 values/);
    assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
  });
});
