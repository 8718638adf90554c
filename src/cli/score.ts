/** `makemost score` and `makemost fill-mask`: per-token log-probabilities, and mask filling. */
import { ConfigError, ShapeError } from '../errors.js';
import { fillMaskIds, tokenLogProbs } from '../generation/score.js';
import { fromPretrained } from '../models/pretrained.js';
import type { CausalLM, EncoderModel } from '../models/types.js';
import { AutoTokenizer } from '../tokenizers/files.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';
import { fmt, showToken, table } from './format.js';

/** The token's text, or `<id N>` for ids the model has but the tokenizer lacks (padded embeddings). */
function tokenText(tok: PreTrainedTokenizer, id: number): string {
  return id < tok.length ? (tok.convertIdsToTokens(id) as string) : `<id ${id}>`;
}

/** Result of scoring a text. */
export interface ScoreResult {
  model: string;
  tokens: { position: number; token: string; id: number; logprob: number | null }[];
  total_logprob: number;
  scored_tokens: number;
  mean_logprob: number;
  perplexity: number;
}

/** Score `text` under the causal LM in `dir`; a BOS token is prepended (when the tokenizer has one) so every token is scored. */
export async function scoreText(dir: string, text: string, opts: { bos: boolean }): Promise<ScoreResult> {
  const tok = await AutoTokenizer.fromPretrained(dir);
  let ids = tok.encode(text).ids;
  if (opts.bos && tok.bosTokenId !== undefined && ids[0] !== tok.bosTokenId) ids = [tok.bosTokenId, ...ids];
  if (ids.length < 2) throw new ShapeError(`the text gives ${ids.length} token(s); scoring needs a context and at least one token`, tok.bosTokenId === undefined ? 'this tokenizer has no BOS token: score a text of two or more tokens' : 'pass a non-empty --text');
  const model = (await fromPretrained(dir, 'causal-lm')) as CausalLM;
  try {
    const lps = await tokenLogProbs(model, ids);
    const tokens = ids.map((id, i) => ({ position: i, token: tokenText(tok, id), id, logprob: i === 0 ? null : lps[i - 1] }));
    const total = lps.reduce((a, b) => a + b, 0);
    return { model: dir, tokens, total_logprob: total, scored_tokens: lps.length, mean_logprob: total / lps.length, perplexity: Math.exp(-total / lps.length) };
  } finally {
    model.dispose();
  }
}

/** The table and summary lines for `score`. */
export function formatScore(r: ScoreResult): string {
  const rows = r.tokens.map((t) => [t.position, showToken(t.token), t.id, t.logprob === null ? '—' : fmt(t.logprob)]);
  return `${table(['pos', 'token', 'id', 'log p'], rows)}\n\ntotal log p = ${fmt(r.total_logprob)} over ${r.scored_tokens} tokens; mean ${fmt(r.mean_logprob)}; perplexity ${fmt(r.perplexity)}`;
}

/** Result of filling masks. */
export interface FillMaskResult {
  model: string;
  masks: { position: number; candidates: { token: string; token_id: number; score: number; sequence: string }[] }[];
}

/** Top-k fillers for each mask token in `text` under the masked LM in `dir`. */
export async function fillMask(dir: string, text: string, topK: number): Promise<FillMaskResult> {
  const tok = await AutoTokenizer.fromPretrained(dir);
  const maskId = tok.maskTokenId;
  if (maskId === undefined || tok.maskToken === undefined) throw new ConfigError(`the tokenizer in ${dir} has no mask token`, 'fill-mask needs a masked-LM tokenizer (BERT: [MASK], RoBERTa: <mask>)');
  const ids = tok.encode(text).ids;
  if (!ids.includes(maskId)) throw new ShapeError(`the text contains no ${tok.maskToken} token`, `write ${tok.maskToken} where a word should be predicted, e.g. "Paris is the ${tok.maskToken} of France."`);
  const model = (await fromPretrained(dir, 'masked-lm')) as EncoderModel;
  try {
    const found = await fillMaskIds(model, ids, maskId, topK);
    return {
      model: dir,
      masks: found.map(({ position, candidates }) => ({
        position,
        candidates: candidates.map((c) => {
          const filled = ids.slice();
          filled[position] = c.tokenId;
          return { token: tokenText(tok, c.tokenId), token_id: c.tokenId, score: c.score, sequence: tok.decode(filled, { skipSpecialTokens: true }) };
        }),
      })),
    };
  } finally {
    model.dispose();
  }
}

/** A table per mask for `fill-mask`. */
export function formatFillMask(r: FillMaskResult): string {
  return r.masks
    .map((m, i) => `mask ${i + 1} (token position ${m.position})\n${table(['rank', 'token', 'id', 'p', 'sequence'], m.candidates.map((c, j) => [j + 1, showToken(c.token), c.token_id, c.score, showToken(c.sequence)]))}`)
    .join('\n\n');
}
