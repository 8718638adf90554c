/**
 * makemost's browser-safe entry point: backend, models, tokenizers, io over buffers, scoring.
 * File-system loading (`fromPretrained`, `AutoTokenizer`, `model.save`) is in `makemost/node`.
 */
export { initBackend, liveTensors, tf, type BackendName, type BackendOptions } from './backend/index.js';
export { disposeAll, tidy } from './backend/memory.js';
export { Rng } from './backend/rng.js';
export { CheckpointError, ConfigError, MakemostError, ShapeError, UnsupportedError } from './errors.js';
export { safetensorsFromBuffer, serializeSafetensors, type SaveTensor, type SaveTensors } from './io/safetensors.js';
export { Module, ModuleList, mapSource, type TensorSource } from './nn/module.js';
export { cacheLength, type KVCache, type LayerKV } from './nn/attention.js';
export { buildModel, registerArchitecture, supportedModelTypes, type Architecture, type Task } from './models/registry.js';
export { PreTrainedModel } from './models/pretrained_model.js';
export type { CausalLM, DecoderForwardOptions, DecoderOutput, EncoderForwardOptions, EncoderModel, EncoderOutput, Ids, ModelDims } from './models/types.js';
export { GPT2LMHeadModel, GPT2Model } from './models/gpt2/model.js';
export { parseGPT2Config, type GPT2Config } from './models/gpt2/config.js';
export { LlamaForCausalLM, LlamaModel } from './models/llama/model.js';
export { parseLlamaConfig, type LlamaConfig } from './models/llama/config.js';
export { BertModel, RobertaModel } from './models/bert/model.js';
export { BertForMaskedLM, RobertaForMaskedLM } from './models/bert/heads.js';
export { parseBertConfig, type BertConfig } from './models/bert/config.js';
export * from './tokenizers/index.js';
export * from './generation/index.js';
export { AdamW, decayParameterNames, type AdamWOptions, type ParamGroup } from './training/optim/adamw.js';
export { clipGradNorm, globalGradNorm } from './training/optim/clip.js';
export { getSchedule, SCHEDULE_TYPES, type Schedule, type ScheduleType } from './training/schedules.js';
export { train, arrayBatches, optimizerFromArgs, NonFiniteLossError, type BatchFactory, type LossFn, type TrainOptions, type TrainResult } from './training/trainer.js';
export { validate as validateTrainingArgs, type TrainingArgs } from './training/args.js';
export { parseFinetuneMode, prepareFinetune, type FinetuneMode } from './training/modes.js';
export { applyLora, mergeLora, unloadLora, DEFAULT_TARGET_MODULES } from './training/lora/apply.js';
export { saveLora, loadLora } from './training/lora/peft.js';
export * from './methods/hso/index.js';
