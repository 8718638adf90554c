/**
 * model_type → how to parse its config, build its classes and map its checkpoint keys (HF's Auto*
 * mappings). Adding an architecture is one entry here plus its own folder.
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { hfKeyMapper, type RawConfig } from './common.js';
import { bertForMaskedLMKeyRules, bertKeyMapper, bertKeyRules, robertaForMaskedLMKeyRules, robertaKeyRules } from './bert/checkpoint.js';
import { bertDims, parseBertConfig, type BertConfig } from './bert/config.js';
import { BertForSequenceClassification, bertSeqClsKeyRules, RobertaForSequenceClassification, robertaSeqClsKeyRules } from './bert/classification.js';
import { BertForMaskedLM, RobertaForMaskedLM } from './bert/heads.js';
import { BertModel, RobertaModel } from './bert/model.js';
import { llamaKeyRules } from './llama/checkpoint.js';
import { llamaDims, parseLlamaConfig, type LlamaConfig } from './llama/config.js';
import { LlamaForSequenceClassification, llamaSeqClsKeyRules } from './llama/classification.js';
import { LlamaForCausalLM, LlamaModel } from './llama/model.js';
import { gpt2Dims, parseGPT2Config, type GPT2Config } from './gpt2/config.js';
import { gpt2KeyRules } from './gpt2/checkpoint.js';
import { GPT2ForSequenceClassification, gpt2SeqClsKeyRules } from './gpt2/classification.js';
import { GPT2LMHeadModel, GPT2Model } from './gpt2/model.js';
import type { CausalLM, EncoderModel, ModelDims } from './types.js';

/** What a model can be loaded as. */
export type Task = 'base' | 'causal-lm' | 'masked-lm' | 'sequence-classification';

const SEQ_CLS: Task = 'sequence-classification';

/** One family's entry. */
export interface Architecture {
  /** Fill HF defaults and check invariants. */
  parseConfig(raw: RawConfig): Record<string, unknown>;
  /** The numbers generic code needs, from a parsed config. */
  dims(config: Record<string, unknown>): ModelDims;
  /** Maps a checkpoint key to our name (or null to drop it) for a parsed config and task. */
  keyMapper(config: Record<string, unknown>, task: Task): (key: string) => string | null;
  /** Constructors by task, with HF's class name (written to config.json `architectures`). */
  tasks: Partial<Record<Task, { className: string; build: (config: Record<string, unknown>, seed: number | null) => Module }>>;
}

const REGISTRY: Record<string, Architecture> = {
  gpt2: {
    parseConfig: parseGPT2Config,
    dims: (c) => gpt2Dims(c as GPT2Config),
    keyMapper: (_c, task) => hfKeyMapper(task === SEQ_CLS ? gpt2SeqClsKeyRules : gpt2KeyRules, task !== 'base'),
    tasks: {
      base: { className: 'GPT2Model', build: (c, s) => new GPT2Model(c as GPT2Config, s) },
      'causal-lm': { className: 'GPT2LMHeadModel', build: (c, s) => new GPT2LMHeadModel(c as GPT2Config, s) },
      'sequence-classification': { className: 'GPT2ForSequenceClassification', build: (c, s) => new GPT2ForSequenceClassification(c as GPT2Config, s) },
    },
  },
  llama: {
    parseConfig: parseLlamaConfig,
    dims: (c) => llamaDims(c as LlamaConfig),
    keyMapper: (c, task) => hfKeyMapper(task === SEQ_CLS ? llamaSeqClsKeyRules : llamaKeyRules(c as LlamaConfig), task !== 'base'),
    tasks: {
      base: { className: 'LlamaModel', build: (c, s) => new LlamaModel(c as LlamaConfig, s) },
      'causal-lm': { className: 'LlamaForCausalLM', build: (c, s) => new LlamaForCausalLM(c as LlamaConfig, s) },
      'sequence-classification': { className: 'LlamaForSequenceClassification', build: (c, s) => new LlamaForSequenceClassification(c as LlamaConfig, s) },
    },
  },
  bert: {
    parseConfig: parseBertConfig,
    dims: (c) => bertDims(c as BertConfig),
    keyMapper: (_c, task) => (task === SEQ_CLS ? bertKeyMapper(bertSeqClsKeyRules, true) : bertKeyMapper(task === 'base' ? bertKeyRules : bertForMaskedLMKeyRules, task !== 'base')),
    tasks: {
      base: { className: 'BertModel', build: (c, s) => new BertModel(c as BertConfig, s) },
      'masked-lm': { className: 'BertForMaskedLM', build: (c, s) => new BertForMaskedLM(c as BertConfig, s) },
      'sequence-classification': { className: 'BertForSequenceClassification', build: (c, s) => new BertForSequenceClassification(c as BertConfig, s) },
    },
  },
  roberta: {
    parseConfig: parseBertConfig,
    dims: (c) => bertDims(c as BertConfig),
    keyMapper: (_c, task) => (task === SEQ_CLS ? bertKeyMapper(robertaSeqClsKeyRules, true) : bertKeyMapper(task === 'base' ? robertaKeyRules : robertaForMaskedLMKeyRules, task !== 'base')),
    tasks: {
      base: { className: 'RobertaModel', build: (c, s) => new RobertaModel(c as BertConfig, s) },
      'masked-lm': { className: 'RobertaForMaskedLM', build: (c, s) => new RobertaForMaskedLM(c as BertConfig, s) },
      'sequence-classification': { className: 'RobertaForSequenceClassification', build: (c, s) => new RobertaForSequenceClassification(c as BertConfig, s) },
    },
  },
};

/** Register another family (used by each architecture's folder and by users with their own). */
export function registerArchitecture(modelType: string, arch: Architecture): void {
  REGISTRY[modelType] = arch;
}

/** The supported model_type values. */
export function supportedModelTypes(): string[] {
  return Object.keys(REGISTRY);
}

/** Look up a family by config.json's model_type, failing with the supported list. */
export function architectureFor(raw: RawConfig, origin = 'config.json'): Architecture {
  const mt = raw.model_type;
  if (typeof mt !== 'string') throw new ConfigError(`${origin} has no "model_type" field`, `add "model_type": one of ${supportedModelTypes().join(', ')}`);
  const arch = REGISTRY[mt];
  if (!arch) throw new UnsupportedError(`${origin}: model_type '${mt}' is not supported`, `supported model types: ${supportedModelTypes().join(', ')}`);
  return arch;
}

/** Build a randomly initialised model of a task from a raw config (tests, training from scratch). */
export function buildModel(raw: RawConfig, task: Task, seed: number | null = 0): { model: Module; config: Record<string, unknown>; className: string } {
  const arch = architectureFor(raw);
  const entry = arch.tasks[task];
  if (!entry) {
    const have = Object.keys(arch.tasks).join(', ');
    throw new UnsupportedError(`model_type '${String(raw.model_type)}' has no ${task} model`, `this family supports: ${have}`);
  }
  const config = arch.parseConfig(raw);
  return { model: entry.build(config, seed), config, className: entry.className };
}

export type { CausalLM, EncoderModel };
