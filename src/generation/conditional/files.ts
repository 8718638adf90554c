/**
 * Saving and loading an attribute classifier on disk (Node only): `<name>.json` (the config) and
 * `<name>.safetensors` (float32 weights) in a folder — by default the LM's own folder, beside
 * config.json, with name `attribute_classifier`.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../../errors.js';
import { readJsonFile, saveSafetensors } from '../../io/hf_folder.js';
import { fileByteSource } from '../../io/node_bytes.js';
import { SafetensorsReader } from '../../io/safetensors.js';
import { AttributeClassifier } from './classifier.js';

/** Default file stem. */
export const CLASSIFIER_NAME = 'attribute_classifier';

/** Write `<dir>/<name>.json` and `<dir>/<name>.safetensors` (the folder is created when missing). */
export async function saveClassifier(clf: AttributeClassifier, dir: string, name = CLASSIFIER_NAME): Promise<void> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`cannot create the folder ${dir}: ${(e as Error).message}`, 'choose a writable folder');
  }
  const { config, tensors } = await clf.toFiles();
  saveSafetensors(join(dir, `${name}.safetensors`), tensors, { attribute: JSON.stringify(config.attribute) });
  const tmp = join(dir, `.${name}.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
  renameSync(tmp, join(dir, `${name}.json`));
}

/** Load a classifier saved by saveClassifier; `label` restores a custom attribute's function. */
export function loadClassifier(dir: string, opts: { name?: string; label?: (tokens: number[]) => boolean } = {}): AttributeClassifier {
  const name = opts.name ?? CLASSIFIER_NAME;
  const cfgPath = join(dir, `${name}.json`);
  const weightPath = join(dir, `${name}.safetensors`);
  if (!existsSync(cfgPath)) {
    throw new ConfigError(`no attribute classifier in '${dir}': ${name}.json not found`,
      'train one first (trainAttributeClassifier, then saveClassifier), or pass the folder it was saved in');
  }
  const config = readJsonFile(cfgPath, 'attribute classifier config');
  const file = fileByteSource(weightPath);
  try {
    return AttributeClassifier.fromFiles(config, SafetensorsReader.open(file), { label: opts.label, origin: weightPath });
  } finally {
    file.close();
  }
}
