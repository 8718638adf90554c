/**
 * Pure parts of the corpus builder: turning the text files of Debian packages (fortune files, WordNet's
 * data.* files) into documents, and the deterministic split of a document by the SHA-256 of its text.
 * build_corpus.ts does the fetching and writing; these functions are what the tests pin down.
 */
import { createHash } from 'node:crypto';

/** One corpus document: its text and where it came from. */
export interface Doc {
  text: string;
  source: string;
}

/** The three splits. */
export type Split = 'train' | 'validation' | 'test';

/** Hex SHA-256 of a string (UTF-8) or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The split of a text, from the first 4 bytes of SHA-256(text) as a number in [0, 1): below `test` it is
 * test, below `test + validation` validation, else train. A text's split never depends on the others,
 * so adding a package does not reshuffle the existing ones.
 */
export function splitOf(text: string, shares: { validation: number; test: number } = { validation: 0.02, test: 0.02 }): Split {
  const u = parseInt(sha256Hex(text).slice(0, 8), 16) / 2 ** 32;
  if (u < shares.test) return 'test';
  if (u < shares.test + shares.validation) return 'validation';
  return 'train';
}

/** Fortune-file entries (separated by lines holding only `%`), trimmed, empty ones dropped. */
export function parseFortunes(text: string): string[] {
  return text.replace(/\r\n/g, '\n').split(/^%[ \t]*$/m).map((s) => s.replace(/^\n+|\s+$/g, '')).filter((s) => s.trim().length > 0);
}

/**
 * WordNet data.* lines to documents "word, other word: gloss" (the gloss holds the definition and quoted
 * example sentences). Lines starting with spaces are the license header; underscores in lemmas are spaces.
 */
export function parseWordnetData(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith(' ')) continue;
    const bar = line.indexOf(' | ');
    if (bar < 0) continue;
    const fields = line.slice(0, bar).split(' ');
    const count = parseInt(fields[3], 16);
    const words: string[] = [];
    for (let i = 0; i < count; i++) words.push(fields[4 + 2 * i].replace(/\(.*\)$/, '').replace(/_/g, ' '));
    const gloss = line.slice(bar + 3).trim();
    if (gloss) out.push(`${words.join(', ')}: ${gloss}`);
  }
  return out;
}

/** Documents as JSON lines, in the order given. */
export function toJsonl(docs: readonly Doc[]): string {
  return docs.map((d) => JSON.stringify({ text: d.text, source: d.source })).join('\n') + (docs.length ? '\n' : '');
}
