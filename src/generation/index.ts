/**
 * Decoding: generate() with HF's options, its strategies, logits processors, stopping rules and streaming.
 */
export {
  GENERATION_DEFAULTS, GENERATION_KEYS, eosIds, maxNewTokensFor, resolveGenerationConfig, validate, validate as validateGenerationConfig,
  type EarlyStopping, type GenerationConfig, type GenerationOptions, type ResolveContext,
} from './config.js';
export { generate, type ConditionalOption, type GenerateExtras, type GenerateOptions, type GenerateResult, type GenerationTokenizer } from './generate.js';
export {
  applyProcessors, badWords, bannedNgramTokens, buildProcessors, epsilonCutoff, etaCutoff, minLength, minNewTokens,
  minP, named, noRepeatNgram, repetitionPenalty, temperature, topK, topP, typical, type ProcessorContext,
} from './processors/index.js';
export { argmax, decodeLoop, greedySearch, logProbAt, type TokenPicker } from './search/greedy.js';
export { drawFromScores, sample, type SampleOptions } from './search/sample.js';
export {
  aborted, cutAtStopString, eosCriterion, maxNewTokensCriterion, maxTimeCriterion, stopStringCriterion, yieldToEventLoop,
  type TokenDecoder,
} from './stopping.js';
export { IncrementalDecoder, TextStreamer, generateStream, type StreamTextOptions, type Streamer } from './streaming.js';
export { advance, disposeState, prefill, selectRows, type DecoderState, type StateOptions } from './state.js';
export { fillMaskIds, tokenLogProbs, type MaskCandidate } from './score.js';
export type { GenerateOutput, LogitsProcessor, StoppingCriterion, StrategyOptions } from './types.js';
export { beamSearch, type BeamOptions, type BeamSearchOutput, type RankBonus } from './search/beam.js';
export { emptyModeCheck, exactModeSearch, modesByLength, type ExactOptions, type ExactResult } from './search/exact.js';
export { contaminationDemo, degeneracyStats, formatDegeneracyTable, seqRepN, type DegeneracyStats, type ScoredOutput } from './analysis.js';
export * from './conditional/index.js';
export { continuationLogProbs, type SharedPrefix } from './prefix_score.js';
