/**
 * The tokenizer layer's browser-safe entry point. The Node folder loader (`AutoTokenizer`) lives in
 * ./files.js so that browser bundles never pull in node:fs.
 */
export {
  PreTrainedTokenizer,
  type BatchEncodeOptions, type BatchEncoding, type DecodeOptions, type EncodeOptions, type Encoding,
  type TokenizerSources,
} from './tokenizer.js';
export { tokenizerFromFiles, hasTokenizerFiles, type TokenizerFiles, type TokenizerLoadOptions } from './auto.js';
export { legacyTokenizerJson, parseMergesTxt, parseVocabJson, parseVocabTxt, templateProcessing } from './legacy.js';
export type { AddedTokenJson, JsonObject, TokenizerFamily, TokenizerJson } from './special_tokens.js';
export type { Side } from './batch.js';
