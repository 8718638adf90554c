/** Hidden-state optimisation (Yoshida & Gimpel 2021): streaming perplexity and few-shot classification. */
export { SlotAdam, resolveSlotAdam, type SlotAdamOptions } from './slot_adam.js';
export { HsoStream, streamingPerplexity, type HsoOptions, type StreamingOptions, type StreamingResult, type WindowReport } from './perplexity.js';
export { classifyFewShot, fewShotFromText, optimisePrompt, type FewShotOptions, type FewShotPrediction, type FewShotResult, type OptimisedPrompt, type PromptHsoOptions, type TextFewShotOptions } from './fewshot.js';
export { encodeFewShot, splitTemplate, type EncodedFewShot, type FewShotFormat, type LabelledText, type PromptTokenizer } from './prompt.js';
export { lossGradsWithAux, pickLogProbs, type GradsWithAux } from './grad.js';
