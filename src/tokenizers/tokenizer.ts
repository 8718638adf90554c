/**
 * PreTrainedTokenizer: the HF transformers tokenizer API (camelCase) over @huggingface/tokenizers, which
 * does normalization, pre-tokenization, the BPE/WordPiece/Unigram model, special-token templates and
 * decoding. This file adds what HF's Python layer adds (tokenization_utils_base.py, _fast.py): special
 * tokens as HF resolves them, truncation that keeps room for special tokens, padding, batches, and
 * checked ids. Browser-safe: it takes already-parsed JSON.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError, ShapeError } from '../errors.js';
import { padRows, truncateLongestFirst, type Row, type Side } from './batch.js';
import { prepareTokenizerJson, sideOf } from './prepare.js';
import {
  familyDefaults, modelVocab, resolveSpecialTokens, SPECIAL_TOKEN_KEYS, tokenizerFamily,
  type JsonObject, type SpecialTokenKey, type SpecialTokens, type TokenizerFamily,
} from './special_tokens.js';

/** The parsed files a tokenizer is built from; only `tokenizerJson` is required. */
export interface TokenizerSources {
  /** tokenizer.json (or the same structure converted from legacy files). */
  tokenizerJson: unknown;
  /** tokenizer_config.json */
  tokenizerConfig?: JsonObject;
  /** special_tokens_map.json */
  specialTokensMap?: JsonObject;
  /** The model's config.json (its `model_type` picks the tokenizer class when the config names none). */
  modelConfig?: JsonObject;
  /** added_tokens.json (legacy {token: id}). */
  addedTokensFile?: JsonObject;
}

/** Options of `encode`. */
export interface EncodeOptions {
  /** Add the template's special tokens (BOS, [CLS] … [SEP]); default true. */
  addSpecialTokens?: boolean;
  /** Second text of a pair. */
  pair?: string;
  /** Truncate to `maxLength` (default: on when `maxLength` is given, as in HF). */
  truncation?: boolean;
  /** Length limit including special tokens; default `modelMaxLength`. */
  maxLength?: number;
  /** Default: whether the model takes token_type_ids (tokenizer class / `model_input_names`). */
  returnTokenTypeIds?: boolean;
}

/** One encoded text (or pair). */
export interface Encoding {
  ids: number[];
  tokens: string[];
  attentionMask: number[];
  tokenTypeIds?: number[];
}

/** Options of `batchEncode`. */
export interface BatchEncodeOptions extends Omit<EncodeOptions, 'pair'> {
  /** false (default), true/'longest' (to the longest row) or 'max_length' (to `maxLength`). */
  padding?: boolean | 'longest' | 'max_length';
  /** Default: the tokenizer's `paddingSide`. */
  paddingSide?: Side;
  /** Second texts, one per text. */
  pairs?: string[];
}

/** A batch as lists, one row per text. */
export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds?: number[][];
}

/** Options of `decode`. */
export interface DecodeOptions {
  /** Drop special tokens (default false). */
  skipSpecialTokens?: boolean;
  /** Default: tokenizer_config's `clean_up_tokenization_spaces`, else the class default. */
  cleanUpTokenizationSpaces?: boolean;
}

/** A Hugging Face tokenizer: encode/decode, batches with truncation and padding, special tokens. */
export class PreTrainedTokenizer {
  /** The tokenizer class whose defaults apply ('generic' = PreTrainedTokenizerFast). */
  readonly family: TokenizerFamily;
  /** Longest input the model takes (`model_max_length`); Infinity when unset. */
  readonly modelMaxLength: number;
  /** Inputs the model takes (`model_input_names`). */
  readonly modelInputNames: string[];
  /** Size of the model's vocabulary without added tokens (HF `vocab_size`). */
  readonly vocabSize: number;
  /** Size with added tokens (HF `len(tokenizer)`). */
  readonly length: number;
  /** Side that receives padding (`padding_side`, default right). */
  paddingSide: Side;
  /** Side that loses tokens on truncation (`truncation_side`, default right). */
  truncationSide: Side;
  /** Default of `decode`'s `cleanUpTokenizationSpaces`. */
  cleanUpTokenizationSpaces: boolean;
  private readonly impl: Tokenizer;
  private readonly specials: SpecialTokens;
  private readonly addedIds = new Map<string, number>();
  private readonly robertaTypes: boolean;

  constructor(sources: TokenizerSources) {
    const config = sources.tokenizerConfig ?? {};
    this.family = tokenizerFamily(config, sources.modelConfig ?? {});
    this.specials = resolveSpecialTokens(this.family, config, sources.specialTokensMap ?? {});
    const json = prepareTokenizerJson(sources.tokenizerJson, this.family, this.specials, config, sources.addedTokensFile);
    const defaults = familyDefaults(this.family);
    const names = config.model_input_names;
    this.modelInputNames = Array.isArray(names) ? names.map(String) : defaults.modelInputNames;
    const cleanUp = config.clean_up_tokenization_spaces;
    this.cleanUpTokenizationSpaces = typeof cleanUp === 'boolean' ? cleanUp : defaults.cleanUpTokenizationSpaces;
    const max = config.model_max_length;
    // HF writes int(1e30) for "no limit".
    this.modelMaxLength = typeof max === 'number' && max < 1e30 ? max : Infinity;
    this.paddingSide = sideOf(config, 'padding_side');
    this.truncationSide = sideOf(config, 'truncation_side');
    const libConfig: JsonObject = { ...config, clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces };
    for (const key of SPECIAL_TOKEN_KEYS) libConfig[key] = this.specials.named[key]?.content;
    libConfig.additional_special_tokens = this.specials.additional.map((s) => s.content);
    try {
      this.impl = new Tokenizer(json, libConfig);
    } catch (e) {
      throw new ConfigError(`tokenizer.json: @huggingface/tokenizers cannot build it: ${(e as Error).message}`,
        'Check the component types in tokenizer.json against the list in @huggingface/tokenizers\' README.');
    }
    for (const t of json.added_tokens ?? []) {
      this.addedIds.set(t.content, t.id);
      if (t.normalized && this.impl.normalizer) this.addedIds.set(this.impl.normalizer(t.content), t.id);
    }
    const vocab = modelVocab(json.model);
    this.vocabSize = vocab.size;
    this.length = new Set([...vocab.keys(), ...(json.added_tokens ?? []).map((t) => t.content)]).size;
    const pp = json.post_processor;
    const ppTypes = pp?.type === 'Sequence' && Array.isArray(pp.processors)
      ? (pp.processors as JsonObject[]).map((p) => p.type) : [pp?.type];
    // tokenizers' RobertaProcessing sets every type id to 0 (RoBERTa has one token type).
    this.robertaTypes = ppTypes.includes('RobertaProcessing');
  }

  /** The text's tokens without special tokens (HF `tokenize`). */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') {
      throw new ShapeError(`tokenize: expected a string, found ${typeof text}.`, 'Pass the text as a string.');
    }
    return this.impl.tokenize(text, { add_special_tokens: false });
  }

  /** Encodes one text (or a pair) with special tokens, optionally truncated. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const maxLength = this.truncationLength(options.truncation, options.maxLength, false);
    return this.encodeRow(text, options.pair, options.addSpecialTokens ?? true, maxLength, options.returnTokenTypeIds);
  }

  /** Encodes many texts (or pairs) into rows, truncated and padded as asked. */
  batchEncode(texts: string[], options: BatchEncodeOptions = {}): BatchEncoding {
    const { pairs } = options;
    if (!Array.isArray(texts)) throw new ShapeError('batchEncode: expected an array of strings.', 'Wrap one text as [text].');
    if (pairs !== undefined && pairs.length !== texts.length) {
      throw new ShapeError(`batchEncode: ${texts.length} texts but ${pairs.length} pairs.`, 'Give one pair per text.');
    }
    const padding = options.padding === true ? 'longest' : (options.padding ?? false);
    const maxLength = this.truncationLength(options.truncation, options.maxLength, padding);
    let rows: Row[] = texts.map((text, i) => this.encodeRow(text, pairs?.[i], options.addSpecialTokens ?? true,
      maxLength, options.returnTokenTypeIds));
    if (padding !== false) {
      const padId = this.requirePadId();
      const target = padding === 'max_length'
        ? this.limit(options.maxLength, "padding: 'max_length'") : rows.reduce((m, r) => Math.max(m, r.ids.length), 0);
      rows = padRows(rows, target, padId, options.paddingSide ?? this.paddingSide);
    }
    const out: BatchEncoding = { inputIds: rows.map((r) => r.ids), attentionMask: rows.map((r) => r.attentionMask) };
    if (this.defaultTypeIds(options.returnTokenTypeIds)) out.tokenTypeIds = rows.map((r) => r.tokenTypeIds ?? []);
    return out;
  }

  /** Decodes ids to text; ids the vocabulary does not have are dropped, as HF tokenizers does. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const list = Array.from(ids);
    this.checkIds(list, 'decode');
    const known = list.filter((id) => this.impl.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return this.impl.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces,
    });
  }

  /** `decode` over rows. */
  batchDecode(rows: ArrayLike<number>[], options: DecodeOptions = {}): string[] {
    return rows.map((ids) => this.decode(ids, options));
  }

  /** Number of special tokens the template adds to one text or a pair. */
  numSpecialTokensToAdd(pair = false): number {
    return this.postProcess([], pair ? [] : null, true).tokens.length;
  }

  /** The id of a token, or undefined when the vocabulary lacks it (no unk fallback). */
  tokenToId(token: string): number | undefined {
    return this.addedIds.get(token) ?? this.impl.token_to_id(token);
  }

  /** Tokens → ids; unknown tokens map to the unk token (HF), or throw when there is none. */
  convertTokensToIds(tokens: string): number;
  convertTokensToIds(tokens: string[]): number[];
  convertTokensToIds(tokens: string | string[]): number | number[] {
    return typeof tokens === 'string' ? this.idOf(tokens) : tokens.map((t) => this.idOf(t));
  }

  /** Ids → tokens; throws on ids outside the vocabulary. */
  convertIdsToTokens(ids: number): string;
  convertIdsToTokens(ids: number[]): string[];
  convertIdsToTokens(ids: number | number[]): string | string[] {
    const one = (id: number): string => {
      this.checkIds([id], 'convertIdsToTokens');
      const token = this.impl.id_to_token(id);
      if (token === undefined) {
        throw new ShapeError(`convertIdsToTokens: id ${id} is not in the vocabulary (size ${this.length}).`,
          'Ids come from this tokenizer; a model with a larger embedding can emit ids no token has.');
      }
      return token;
    };
    return typeof ids === 'number' ? one(ids) : ids.map(one);
  }

  get bosToken(): string | undefined { return this.specials.named.bos_token?.content; }
  get eosToken(): string | undefined { return this.specials.named.eos_token?.content; }
  get unkToken(): string | undefined { return this.specials.named.unk_token?.content; }
  get sepToken(): string | undefined { return this.specials.named.sep_token?.content; }
  get clsToken(): string | undefined { return this.specials.named.cls_token?.content; }
  get maskToken(): string | undefined { return this.specials.named.mask_token?.content; }
  get padToken(): string | undefined { return this.specials.named.pad_token?.content; }
  /** Sets the pad token (e.g. `tok.padToken = tok.eosToken`, as GPT-2 users do); it must be in the vocabulary. */
  set padToken(token: string | undefined) {
    if (token === undefined) { delete this.specials.named.pad_token; return; }
    if (this.tokenToId(token) === undefined) {
      throw new ConfigError(`padToken: ${JSON.stringify(token)} is not in the vocabulary.`,
        'Use a token the vocabulary has, e.g. tokenizer.padToken = tokenizer.eosToken.');
    }
    this.specials.named.pad_token = { content: token };
  }
  get additionalSpecialTokens(): string[] { return this.specials.additional.map((s) => s.content); }

  get bosTokenId(): number | undefined { return this.specialId('bos_token'); }
  get eosTokenId(): number | undefined { return this.specialId('eos_token'); }
  get unkTokenId(): number | undefined { return this.specialId('unk_token'); }
  get sepTokenId(): number | undefined { return this.specialId('sep_token'); }
  get clsTokenId(): number | undefined { return this.specialId('cls_token'); }
  get maskTokenId(): number | undefined { return this.specialId('mask_token'); }
  get padTokenId(): number | undefined { return this.specialId('pad_token'); }

  /** Every special token, in HF's order (bos, eos, unk, sep, pad, cls, mask, additional), without repeats. */
  get allSpecialTokens(): string[] {
    const all = [...SPECIAL_TOKEN_KEYS.map((k) => this.specials.named[k]?.content), ...this.additionalSpecialTokens];
    return [...new Set(all.filter((t): t is string => t !== undefined))];
  }

  /** Ids of `allSpecialTokens`. */
  get allSpecialIds(): number[] {
    return this.allSpecialTokens.map((t) => this.tokenToId(t)).filter((id): id is number => id !== undefined);
  }

  private specialId(key: SpecialTokenKey): number | undefined {
    const token = this.specials.named[key]?.content;
    return token === undefined ? undefined : this.tokenToId(token);
  }

  private idOf(token: string): number {
    const id = this.tokenToId(token) ?? this.unkTokenId;
    if (id === undefined) {
      throw new ConfigError(`token ${JSON.stringify(token)} is not in the vocabulary and there is no unk token.`,
        'Check the token spelling (byte-level BPE writes a leading space as "Ġ").');
    }
    return id;
  }

  private checkIds(ids: unknown, where: string): void {
    if (!Array.isArray(ids) || ids.some((id) => !Number.isInteger(id) || id < 0)) {
      throw new ShapeError(`${where}: expected an array of non-negative integer ids, found ${JSON.stringify(ids)}.`,
        'Convert tensors with `await t.array()` first, and pass one row at a time (batchDecode for rows).');
    }
  }

  private requirePadId(): number {
    const id = this.padTokenId;
    if (id === undefined) {
      throw new ConfigError('Asked to pad, but the tokenizer has no pad token (tokenizer_config.json sets no "pad_token").',
        'Set one: `tokenizer.padToken = tokenizer.eosToken` (as GPT-2 users do), or pass `padToken` to ' +
        'AutoTokenizer.fromPretrained; the attention mask keeps padded positions out.');
    }
    return id;
  }

  private limit(maxLength: number | undefined, what: string): number {
    const n = maxLength ?? this.modelMaxLength;
    if (!Number.isFinite(n)) {
      throw new ConfigError(`${what} needs a length, but no maxLength was given and tokenizer_config.json sets no ` +
        '"model_max_length".', 'Pass maxLength.');
    }
    if (!Number.isInteger(n) || n < 0) {
      throw new ConfigError(`maxLength: expected a non-negative integer, found ${n}.`, 'Pass a whole number.');
    }
    return n;
  }

  // HF's _get_padding_truncation_strategies: maxLength alone (no padding) turns truncation on.
  private truncationLength(truncation: boolean | undefined, maxLength: number | undefined,
    padding: false | 'longest' | 'max_length'): number | undefined {
    const enabled = truncation ?? (maxLength !== undefined && padding === false);
    if (enabled) return this.limit(maxLength, 'truncation');
    if (maxLength !== undefined && padding !== 'max_length') {
      throw new ConfigError(`maxLength ${maxLength} has no effect: truncation is off and padding is ` +
        `${padding === false ? 'off' : "'longest'"}.`, "Set truncation: true, or padding: 'max_length'.");
    }
    return undefined;
  }

  private defaultTypeIds(requested: boolean | undefined): boolean {
    return requested ?? this.modelInputNames.includes('token_type_ids');
  }

  private encodeRow(text: string, pair: string | undefined, addSpecialTokens: boolean,
    maxLength: number | undefined, returnTypes: boolean | undefined): Encoding {
    let a = this.tokenize(text);
    let b = pair === undefined ? null : this.tokenize(pair);
    if (maxLength !== undefined) {
      const special = addSpecialTokens ? this.numSpecialTokensToAdd(b !== null) : 0;
      if (maxLength < special) {
        throw new ShapeError(`maxLength ${maxLength} is shorter than the ${special} special tokens the template adds.`,
          `Pass maxLength >= ${special}, or addSpecialTokens: false.`);
      }
      [a, b] = truncateLongestFirst(a, b, maxLength - special, this.truncationSide);
    }
    const { tokens, typeIds } = this.postProcess(a, b, addSpecialTokens);
    const out: Encoding = { ids: tokens.map((t) => this.idOf(t)), tokens, attentionMask: tokens.map(() => 1) };
    if (this.defaultTypeIds(returnTypes)) out.tokenTypeIds = typeIds;
    return out;
  }

  private postProcess(a: string[], b: string[] | null, add: boolean): { tokens: string[]; typeIds: number[] } {
    const pp = this.impl.post_processor;
    const out = pp ? pp.post_process(a, b, add) : { tokens: a, tokens_pair: b ?? undefined };
    let tokens = out.tokens;
    let typeIds = out.token_type_ids ?? tokens.map(() => 0);
    // tokenizers' ByteLevel post-processor (GPT-2) returns the pair apart; its default merge gives it type 1.
    if (out.tokens_pair) {
      tokens = [...tokens, ...out.tokens_pair];
      typeIds = [...typeIds, ...out.tokens_pair.map(() => 1)];
    }
    if (this.robertaTypes) typeIds = typeIds.map(() => 0);
    return { tokens, typeIds };
  }
}
