/**
 * Pure parts of the task-set builder (build_tasks.ts): WordNet 3.0 data.* lines to synsets, the
 * lexicographer file names from the lexnames(5WN) manual page, and the two task sets the methods use —
 * noun supersense classification (gloss → lexicographer file) and definition generation (word → gloss).
 *
 * Every record's split is the corpus split (corpus.ts `splitOf`) of the document its synset became in the
 * LM corpus, "words: gloss", so no model trained on the corpus' train split saw a task's held-out gloss.
 * Formats: wndb(5WN) for the data lines, lexnames(5WN) for the file numbers.
 */
import { sha256Hex, splitOf, type Split } from './corpus.js';

/** The splits, in the order they are written. */
export const SPLITS: readonly Split[] = ['train', 'validation', 'test'];

/** One line of a WordNet data.* file. */
export interface Synset {
  /** Byte offset of the line in its file (8 digits), the synset's id within its part of speech. */
  offset: string;
  /** n, v, a, s (adjective satellite) or r. */
  pos: string;
  /** Lexicographer file number (0–44), an index into the lexnames list. */
  lexFilenum: number;
  /** Lemmas with underscores as spaces and adjective markers such as `(a)` removed. */
  words: string[];
  /** Definition and quoted example sentences, as in the file. */
  gloss: string;
}

/** Synsets of a data.* file; header lines (leading spaces) and lines without a gloss are skipped. */
export function parseSynsets(text: string): Synset[] {
  const out: Synset[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith(' ')) continue;
    const bar = line.indexOf(' | ');
    if (bar < 0) continue;
    const f = line.slice(0, bar).split(' ');
    const count = parseInt(f[3], 16);
    const words: string[] = [];
    for (let i = 0; i < count; i++) words.push(f[4 + 2 * i].replace(/\(.*\)$/, '').replace(/_/g, ' '));
    const gloss = line.slice(bar + 3).trim();
    if (gloss) out.push({ offset: f[0], pos: f[2], lexFilenum: parseInt(f[1], 10), words, gloss });
  }
  return out;
}

/** The lexicographer file names in file-number order, read from the table of the lexnames(5WN) page. */
export function parseLexnames(man: string): string[] {
  const names: string[] = [];
  for (const line of man.split('\n')) {
    const m = /^(\d\d)\t([a-z]+\.[A-Za-z]+)\s*\t/.exec(line);
    if (!m) continue;
    const num = parseInt(m[1], 10);
    if (num !== names.length) throw new Error(`lexnames table: file number ${m[1]} (${m[2]}) out of order, expected ${names.length}`);
    names.push(m[2]);
  }
  return names;
}

/** The synset's document in the LM corpus (corpus.ts parseWordnetData): "word, other word: gloss". */
export function corpusDocument(s: Pick<Synset, 'words' | 'gloss'>): string {
  return `${s.words.join(', ')}: ${s.gloss}`;
}

/** Whether a gloss holds example sentences (WordNet quotes them in double quotes). */
export function hasExamples(gloss: string): boolean {
  return gloss.includes('"');
}

/** Whitespace-separated words of a text. */
export function wordCount(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/** Salted SHA-256 of a record's key: the order records are chosen and written in. */
export function orderKey(key: string): string {
  return sha256Hex(`makemost-tasks\n${key}`);
}

/** Record caps per split, the split rule, and the order key (tests pass hand-written ones). */
export interface SelectOptions {
  caps: Record<Split, number>;
  split?: (corpusDoc: string) => Split;
  key?: (recordKey: string) => string;
}

/** How often each gloss occurs across all synsets: a gloss shared by two synsets is ambiguous. */
export function glossCounts(all: readonly Synset[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of all) m.set(s.gloss, (m.get(s.gloss) ?? 0) + 1);
  return m;
}

/** A supersense example: a noun gloss, its lexicographer file, and the synset's lemmas (for provenance). */
export interface SupersenseRecord {
  text: string;
  label: string;
  /** The lemmas as the corpus wrote them: `${words}: ${text}` is the corpus document. */
  words: string;
}

/** The `n` most frequent noun lexicographer files (ties by name), returned sorted by name. */
export function topNounLabels(all: readonly Synset[], lexnames: readonly string[], n: number): string[] {
  const count = new Map<string, number>();
  for (const s of all) if (s.pos === 'n') count.set(lexnames[s.lexFilenum], (count.get(lexnames[s.lexFilenum]) ?? 0) + 1);
  const ranked = [...count].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return ranked.slice(0, n).map(([name]) => name).sort();
}

/** Round-robin over groups (each already in key order) until `cap` items: balanced while groups last. */
export function roundRobin<T>(groups: readonly T[][], cap: number): T[] {
  const out: T[] = [];
  for (let i = 0; out.length < cap; i++) {
    let took = false;
    for (const g of groups) {
      if (i < g.length && out.length < cap) {
        out.push(g[i]);
        took = true;
      }
    }
    if (!took) break;
  }
  return out;
}

/**
 * Supersense classification: nouns whose lexicographer file is in `labels`, glosses of at most `maxWords`
 * words that no other synset shares; per split, labels take turns in key order up to the cap, and the
 * chosen records are written in key order.
 */
export function buildSupersense(all: readonly Synset[], lexnames: readonly string[], labels: readonly string[], opts: SelectOptions & { maxWords: number }): Record<Split, SupersenseRecord[]> {
  const split = opts.split ?? ((d: string) => splitOf(d));
  const key = opts.key ?? orderKey;
  const counts = glossCounts(all);
  const wanted = new Set(labels);
  const groups: Record<Split, Map<string, { rec: SupersenseRecord; k: string }[]>> = { train: new Map(), validation: new Map(), test: new Map() };
  for (const s of all) {
    const label = lexnames[s.lexFilenum];
    if (s.pos !== 'n' || !wanted.has(label) || counts.get(s.gloss) !== 1 || wordCount(s.gloss) > opts.maxWords) continue;
    const g = groups[split(corpusDocument(s))];
    if (!g.has(label)) g.set(label, []);
    g.get(label)!.push({ rec: { text: s.gloss, label, words: s.words.join(', ') }, k: key(s.gloss) });
  }
  const out = { train: [], validation: [], test: [] } as Record<Split, SupersenseRecord[]>;
  for (const sp of SPLITS) {
    const byLabel = [...labels].map((l) => (groups[sp].get(l) ?? []).sort((a, b) => (a.k < b.k ? -1 : 1)));
    out[sp] = roundRobin(byLabel, opts.caps[sp]).sort((a, b) => (a.k < b.k ? -1 : 1)).map((x) => x.rec);
  }
  return out;
}

/** A definition-generation example: a word or phrase and its definition. */
export interface DefinitionRecord {
  source: string;
  target: string;
}

/**
 * Definition generation: synsets of the given parts of speech with a single lemma and a gloss with no
 * example sentences, of at most `maxWords` words, shared by no other synset — so the corpus document is
 * exactly `${source}: ${target}`. A word (case-folded) lives in one split only: the first of test,
 * validation, train that holds one of its senses; its senses from other splits are dropped. Per split the
 * first `cap` records in key order are kept.
 */
export function buildDefinitions(all: readonly Synset[], pos: readonly string[], opts: SelectOptions & { maxWords: number }): Record<Split, DefinitionRecord[]> {
  const split = opts.split ?? ((d: string) => splitOf(d));
  const key = opts.key ?? orderKey;
  const counts = glossCounts(all);
  const cands: { rec: DefinitionRecord; split: Split; word: string }[] = [];
  const wordSplit = new Map<string, Split>();
  const rank: Record<Split, number> = { test: 0, validation: 1, train: 2 };
  for (const s of all) {
    if (!pos.includes(s.pos) || s.words.length !== 1 || hasExamples(s.gloss) || counts.get(s.gloss) !== 1 || wordCount(s.gloss) > opts.maxWords) continue;
    const rec = { source: s.words[0], target: s.gloss };
    const sp = split(corpusDocument(s));
    const word = rec.source.toLowerCase();
    const prev = wordSplit.get(word);
    if (prev === undefined || rank[sp] < rank[prev]) wordSplit.set(word, sp);
    cands.push({ rec, split: sp, word });
  }
  const out = { train: [], validation: [], test: [] } as Record<Split, DefinitionRecord[]>;
  for (const sp of SPLITS) {
    const mine = cands.filter((c) => c.split === sp && wordSplit.get(c.word) === sp).map((c) => ({ rec: c.rec, k: key(`${c.rec.source}\n${c.rec.target}`) }));
    out[sp] = mine.sort((a, b) => (a.k < b.k ? -1 : 1)).slice(0, opts.caps[sp]).map((x) => x.rec);
  }
  return out;
}

/** Records as JSON lines, fields in the order of the record. */
export function recordsToJsonl(records: readonly object[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : '');
}

/** The text of a `License: <name>` stanza of a Debian copyright file, unindented (`.` lines are blank). */
export function licenseText(copyright: string, name: string): string {
  const lines = copyright.split('\n');
  const start = lines.findIndex((l) => l.trim() === `License: ${name}`);
  if (start < 0) throw new Error(`no "License: ${name}" stanza in the copyright file`);
  const body: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith(' ')) break;
    body.push(l.trim() === '.' ? '' : l.slice(1));
  }
  return body.join('\n').trimEnd() + '\n';
}

/** Count of each label, in the order of `labels`. */
export function labelCounts(records: readonly { label: string }[], labels: readonly string[]): Record<string, number> {
  const c: Record<string, number> = Object.fromEntries(labels.map((l) => [l, 0]));
  for (const r of records) c[r.label] += 1;
  return c;
}
