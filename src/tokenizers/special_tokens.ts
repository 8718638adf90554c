/**
 * Special tokens resolved as HF transformers does: the tokenizer class's defaults (GPT2Tokenizer,
 * RobertaTokenizer, BertTokenizer, LlamaTokenizer), overridden by tokenizer_config.json, overridden by
 * special_tokens_map.json unless the config has `added_tokens_decoder` (the legacy branch of
 * `PreTrainedTokenizerBase._from_pretrained`). `registerAddedTokens` then follows
 * `PreTrainedTokenizerFast.__init__`: every special token becomes an added token, reusing its vocab id
 * when it has one and taking the next free id otherwise (tokenizers' `AddedVocabulary::add_tokens`).
 */
import { ConfigError } from '../errors.js';

/** A parsed JSON object. */
export type JsonObject = Record<string, unknown>;

/** One entry of tokenizer.json's `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** An added token before it has an id (tokenizer_config's AddedToken objects). */
export type AddedTokenSpec = Omit<AddedTokenJson, 'id'>;

/** The tokenizer.json structure (only what we read or write is typed). */
export interface TokenizerJson {
  model: JsonObject;
  added_tokens?: AddedTokenJson[];
  normalizer?: JsonObject | null;
  pre_tokenizer?: JsonObject | null;
  post_processor?: JsonObject | null;
  decoder?: JsonObject | null;
  [key: string]: unknown;
}

/** The tokenizer classes whose defaults we know; anything else is 'generic' (PreTrainedTokenizerFast). */
export type TokenizerFamily = 'gpt2' | 'roberta' | 'bert' | 'llama' | 'generic';

/** HF's SPECIAL_TOKENS_ATTRIBUTES order, which is also the order of `all_special_ids`. */
export const SPECIAL_TOKEN_KEYS = [
  'bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token',
] as const;

/** One of the named special-token attributes. */
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

/** The resolved special tokens: named ones (absent = none) and `additional_special_tokens`. */
export interface SpecialTokens {
  named: Partial<Record<SpecialTokenKey, AddedTokenSpec>>;
  additional: AddedTokenSpec[];
}

interface FamilyDefaults {
  specials: Partial<Record<SpecialTokenKey, string | AddedTokenSpec>>;
  modelInputNames: string[];
  cleanUpTokenizationSpaces: boolean;
}

const WITH_TYPES = ['input_ids', 'token_type_ids', 'attention_mask'];
const WITHOUT_TYPES = ['input_ids', 'attention_mask'];

// The __init__ defaults of each slow/fast class pair in transformers.
const FAMILY_DEFAULTS: Record<TokenizerFamily, FamilyDefaults> = {
  gpt2: {
    specials: { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' },
    modelInputNames: WITHOUT_TYPES,
    cleanUpTokenizationSpaces: false,
  },
  roberta: {
    specials: {
      bos_token: '<s>', eos_token: '</s>', sep_token: '</s>', cls_token: '<s>', unk_token: '<unk>',
      pad_token: '<pad>',
      // RoBERTa's mask behaves like a word: it swallows the space before it.
      mask_token: { content: '<mask>', lstrip: true, rstrip: false, normalized: false },
    },
    modelInputNames: WITHOUT_TYPES,
    cleanUpTokenizationSpaces: false,
  },
  bert: {
    specials: {
      unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]',
    },
    modelInputNames: WITH_TYPES,
    cleanUpTokenizationSpaces: true,
  },
  llama: {
    specials: { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>' },
    modelInputNames: WITHOUT_TYPES,
    cleanUpTokenizationSpaces: false,
  },
  generic: { specials: {}, modelInputNames: WITH_TYPES, cleanUpTokenizationSpaces: false },
};

const CLASS_FAMILY: Record<string, TokenizerFamily> = {
  GPT2Tokenizer: 'gpt2', RobertaTokenizer: 'roberta', BertTokenizer: 'bert', LlamaTokenizer: 'llama',
};
const MODEL_TYPE_FAMILY: Record<string, TokenizerFamily> = {
  gpt2: 'gpt2', roberta: 'roberta', bert: 'bert', llama: 'llama',
};

/** The tokenizer class as AutoTokenizer picks it: `tokenizer_class`, else config.json's `model_type`. */
export function tokenizerFamily(tokenizerConfig: JsonObject, modelConfig: JsonObject): TokenizerFamily {
  const cls = tokenizerConfig.tokenizer_class;
  if (typeof cls === 'string') return CLASS_FAMILY[cls.replace(/Fast$/, '')] ?? 'generic';
  const modelType = modelConfig.model_type;
  return typeof modelType === 'string' ? (MODEL_TYPE_FAMILY[modelType] ?? 'generic') : 'generic';
}

/** Class defaults that are not special tokens: model input names and the decode clean-up flag. */
export function familyDefaults(family: TokenizerFamily): Omit<FamilyDefaults, 'specials'> {
  const { modelInputNames, cleanUpTokenizationSpaces } = FAMILY_DEFAULTS[family];
  return { modelInputNames, cleanUpTokenizationSpaces };
}

/** A special token given as a string or an AddedToken object; null/undefined mean "none". */
export function toSpec(value: unknown, where: string): AddedTokenSpec | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return { content: value };
  if (typeof value === 'object' && typeof (value as JsonObject).content === 'string') {
    const v = value as JsonObject;
    const spec: AddedTokenSpec = { content: v.content as string };
    for (const key of ['single_word', 'lstrip', 'rstrip', 'normalized', 'special'] as const) {
      if (typeof v[key] === 'boolean') spec[key] = v[key] as boolean;
    }
    return spec;
  }
  throw new ConfigError(
    `${where}: expected a string or an AddedToken object {"content": ...}, found ${JSON.stringify(value)}.`,
    'Fix the entry in tokenizer_config.json or special_tokens_map.json.',
  );
}

function specList(value: unknown, where: string): AddedTokenSpec[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new ConfigError(`${where}: expected a list of tokens, found ${JSON.stringify(value)}.`,
      'additional_special_tokens must be a JSON array of strings or AddedToken objects.');
  }
  return value.map((v, i) => toSpec(v, `${where}[${i}]`)).filter((s): s is AddedTokenSpec => s !== undefined);
}

/** Class defaults ← tokenizer_config.json ← special_tokens_map.json, as HF resolves them. */
export function resolveSpecialTokens(
  family: TokenizerFamily, tokenizerConfig: JsonObject, specialTokensMap: JsonObject,
): SpecialTokens {
  const named: Partial<Record<SpecialTokenKey, AddedTokenSpec>> = {};
  // The map file only counts in HF's legacy branch, i.e. when the config has no added_tokens_decoder.
  const useMap = !('added_tokens_decoder' in tokenizerConfig);
  for (const key of SPECIAL_TOKEN_KEYS) {
    let value: unknown = FAMILY_DEFAULTS[family].specials[key];
    if (key in tokenizerConfig) value = tokenizerConfig[key];
    if (useMap && key in specialTokensMap) value = specialTokensMap[key];
    const spec = toSpec(value, key in tokenizerConfig ? `tokenizer_config.json "${key}"` : `"${key}"`);
    if (spec !== undefined) named[key] = spec;
  }
  const additional = specList(tokenizerConfig.additional_special_tokens,
    'tokenizer_config.json "additional_special_tokens"');
  if (useMap) {
    for (const spec of specList(specialTokensMap.additional_special_tokens,
      'special_tokens_map.json "additional_special_tokens"')) {
      if (!additional.some((a) => a.content === spec.content)) additional.push(spec);
    }
  }
  return { named, additional };
}

/** The model's own vocabulary (BPE/WordPiece object or Unigram [piece, score] list) as token → id. */
export function modelVocab(model: JsonObject): Map<string, number> {
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    return new Map(vocab.map((entry, i) => [Array.isArray(entry) ? String(entry[0]) : String(entry), i]));
  }
  if (vocab !== null && typeof vocab === 'object') {
    return new Map(Object.entries(vocab as Record<string, number>));
  }
  throw new ConfigError('tokenizer.json "model.vocab": expected an object or a list, found ' +
    `${vocab === undefined ? 'nothing' : typeof vocab}.`, 'The file is not a tokenizer.json written by HF tokenizers.');
}

/**
 * A copy of `json` whose `added_tokens` also holds tokenizer_config's `added_tokens_decoder`, the legacy
 * added_tokens.json, and every special token.
 */
export function registerAddedTokens(
  json: TokenizerJson, specials: SpecialTokens, tokenizerConfig: JsonObject, addedTokensFile: JsonObject = {},
): TokenizerJson {
  const vocab = modelVocab(json.model);
  const added: AddedTokenJson[] = (json.added_tokens ?? []).map((t) => ({ ...t }));
  const specialContents = new Set([...Object.values(specials.named), ...specials.additional].map((s) => s.content));
  const has = (content: string): boolean => added.some((t) => t.content === content);
  const nextId = (): number => {
    const maxAdded = Math.max(-1, ...added.map((t) => t.id));
    return maxAdded >= vocab.size ? maxAdded + 1 : vocab.size;
  };
  const add = (spec: AddedTokenSpec, id?: number): void => {
    if (has(spec.content)) return;
    const special = spec.special ?? specialContents.has(spec.content);
    added.push({
      id: id ?? vocab.get(spec.content) ?? nextId(), content: spec.content,
      single_word: spec.single_word ?? false, lstrip: spec.lstrip ?? false, rstrip: spec.rstrip ?? false,
      // HF's AddedToken default: special tokens are matched before normalization.
      normalized: spec.normalized ?? !special, special,
    });
  };
  const decoder = tokenizerConfig.added_tokens_decoder;
  if (decoder !== null && typeof decoder === 'object') {
    const entries = Object.entries(decoder as JsonObject).sort((a, b) => Number(a[0]) - Number(b[0]));
    for (const [id, value] of entries) {
      const spec = toSpec(value, `tokenizer_config.json "added_tokens_decoder"."${id}"`);
      if (spec !== undefined) add(spec, Number(id));
    }
  }
  const fileEntries = Object.entries(addedTokensFile).sort((a, b) => Number(a[1]) - Number(b[1]));
  for (const [content, id] of fileEntries) add({ content }, Number(id));
  for (const spec of [...SPECIAL_TOKEN_KEYS.map((k) => specials.named[k]), ...specials.additional]) {
    if (spec !== undefined) add({ ...spec, special: true });
  }
  return { ...json, added_tokens: added };
}
