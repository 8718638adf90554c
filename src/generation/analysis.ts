/**
 * Degeneracy statistics for decoded outputs (issue 3 §4; methods.md §6): how often a strategy returns
 * the empty output, how repetitive its outputs are, how long they are and how probable — the thesis's
 * point that high likelihood is not quality, as numbers. Also methods.md §6.5 Demo 1 in closed form.
 *
 * Repetition is Welleck et al. 2019's seq-rep-n ("Neural Text Generation with Unlikelihood Training",
 * ICLR 2020; `pct_repeat_{n}grams` in facebookresearch/unlikelihood_training): for one output,
 * 1 − |unique n-grams| / |n-grams|, i.e. the fraction of its n-grams that already occurred earlier in
 * the same output, averaged over outputs. They report n = 4 (seq-rep-4), our default.
 */
import { ShapeError } from '../errors.js';

/** One decoded output: the generated token ids and their total log-probability under the model. */
export interface ScoredOutput {
  tokens: number[];
  logprob: number;
}

/** Options of degeneracyStats. */
export interface DegeneracyOptions {
  /** n of seq-rep-n (default 4). */
  n?: number;
  /** Content ends at the first of these (the EOS is scored but is not content). */
  eosTokenIds?: number[];
}

/** Statistics over a list of outputs. */
export interface DegeneracyStats {
  count: number;
  /** Share of outputs with no content tokens. */
  emptyShare: number;
  /** n of seq-rep-n. */
  n: number;
  /** Mean seq-rep-n over the outputs that have at least one n-gram; null when none has. */
  seqRep: number | null;
  /** How many outputs have at least n content tokens (the seq-rep average's denominator). */
  seqRepOutputs: number;
  /** Mean number of content tokens. */
  meanLength: number;
  /** Mean total log-probability per output. */
  meanLogprob: number;
  /** Σ log-probability / Σ scored tokens (EOS included), i.e. −log perplexity; null when no token was scored. */
  tokenLogprob: number | null;
}

/** The tokens before the first EOS. */
export function contentTokens(tokens: number[], eosTokenIds: number[] = []): number[] {
  const cut = tokens.findIndex((t) => eosTokenIds.includes(t));
  return cut < 0 ? tokens.slice() : tokens.slice(0, cut);
}

/** seq-rep-n of one output: the fraction of its n-grams seen earlier in it; null with fewer than n tokens. */
export function seqRepN(tokens: number[], n = 4): number | null {
  if (!Number.isInteger(n) || n < 1) throw new ShapeError(`seq-rep-n: n must be an integer >= 1, got ${n}`);
  const total = tokens.length - n + 1;
  if (total <= 0) return null;
  const seen = new Set<string>();
  for (let i = 0; i < total; i++) seen.add(tokens.slice(i, i + n).join(','));
  return 1 - seen.size / total;
}

/** Share empty, seq-rep-n, mean length, mean log-probability and per-token log-probability of outputs. */
export function degeneracyStats(outputs: ScoredOutput[], opts: DegeneracyOptions = {}): DegeneracyStats {
  if (outputs.length === 0) throw new ShapeError('degeneracy statistics: no outputs', 'pass at least one {tokens, logprob}');
  const n = opts.n ?? 4;
  let empty = 0;
  let length = 0;
  let logprob = 0;
  let scored = 0;
  const reps: number[] = [];
  for (const o of outputs) {
    const content = contentTokens(o.tokens, opts.eosTokenIds);
    if (content.length === 0) empty++;
    length += content.length;
    logprob += o.logprob;
    scored += o.tokens.length;
    const r = seqRepN(content, n);
    if (r !== null) reps.push(r);
  }
  const N = outputs.length;
  return {
    count: N,
    emptyShare: empty / N,
    n,
    seqRep: reps.length ? reps.reduce((a, b) => a + b, 0) / reps.length : null,
    seqRepOutputs: reps.length,
    meanLength: length / N,
    meanLogprob: logprob / N,
    tokenLogprob: scored > 0 ? logprob / scored : null,
  };
}

/** A named row of the report (one decoding strategy). */
export interface DegeneracyRow {
  name: string;
  stats: DegeneracyStats;
}

function fixed(v: number | null, digits: number): string {
  return v === null ? '—' : v.toFixed(digits);
}

/** A plain-text table, one line per strategy. */
export function formatDegeneracyTable(rows: DegeneracyRow[]): string {
  const n = rows[0]?.stats.n ?? 4;
  const head = ['strategy', 'outputs', 'empty %', `seq-rep-${n}`, 'mean len', 'mean logp', 'logp/token'];
  const body = rows.map(({ name, stats: s }) => [
    name, String(s.count), (100 * s.emptyShare).toFixed(1), fixed(s.seqRep, 3), s.meanLength.toFixed(2), fixed(s.meanLogprob, 3), fixed(s.tokenLogprob, 3),
  ]);
  return renderTable(head, body);
}

/** The report as JSON (non-finite numbers become null). */
export function degeneracyJSON(rows: DegeneracyRow[]): string {
  return JSON.stringify(rows.map(({ name, stats }) => ({ name, ...stats })), null, 2);
}

/** One row of methods.md §6.5 Demo 1. */
export interface ContaminationRow {
  n: number;
  /** Probability of any one clean string, (1 − ε)·k^−n. */
  cleanProb: number;
  /** Probability of the empty string, ε. */
  emptyProb: number;
  /** Which output is the unconditional mode. */
  mode: 'clean' | 'empty' | 'tie';
  /** The mode given |y| = n: always a clean string, since the noise has no mass there (methods.md §6.3). */
  conditionalMode: 'clean';
}

/**
 * methods.md §6.5 Demo 1: data = (1 − ε)·uniform over the k^n strings of length n + ε·δ(empty). The
 * empty string is the mode once n exceeds the crossover n* = log_k((1 − ε)/ε) (29.9 for k = 2, ε = 1e−9).
 */
export function contaminationDemo(ns: number[], eps = 1e-9, symbols = 2): { rows: ContaminationRow[]; crossover: number } {
  if (!(eps > 0 && eps < 1)) throw new ShapeError(`contamination demo: eps must be in (0, 1), got ${eps}`);
  if (!Number.isInteger(symbols) || symbols < 2) throw new ShapeError(`contamination demo: symbols must be an integer >= 2, got ${symbols}`);
  const rows = ns.map((n): ContaminationRow => {
    const cleanProb = (1 - eps) * Math.pow(symbols, -n);
    return { n, cleanProb, emptyProb: eps, mode: cleanProb > eps ? 'clean' : cleanProb < eps ? 'empty' : 'tie', conditionalMode: 'clean' };
  });
  return { rows, crossover: Math.log((1 - eps) / eps) / Math.log(symbols) };
}

/** Demo 1 as a plain-text table with its crossover line. */
export function formatContaminationTable(demo: { rows: ContaminationRow[]; crossover: number }): string {
  const body = demo.rows.map((r) => [String(r.n), r.cleanProb.toExponential(2), r.emptyProb.toExponential(2), r.mode, r.conditionalMode]);
  return `${renderTable(['n', 'clean string prob', 'empty prob', 'mode', 'mode given |y| = n'], body)}\ncrossover n* = ${demo.crossover.toFixed(1)}`;
}

function renderTable(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
