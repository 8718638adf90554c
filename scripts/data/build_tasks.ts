/**
 * Builds the shipped task sets under `datasets/` from Debian's `wordnet-base` package (the .deb that
 * build_corpus.ts downloaded): `makemost-supersense` (noun gloss → WordNet lexicographer file) and
 * `makemost-definitions` (word → definition), each with train/validation/test JSON lines, a card, the
 * WordNet license notice and a manifest of SHA-256 sums. Splits follow the LM corpus (tasks.ts).
 * The package is unpacked twice with `dpkg-deb -x` and the script fails unless both give the same bytes;
 * an existing manifest must match too.
 *
 *   node dist/scripts/data/build_tasks.js [--debs .cache/corpus/debs] [--out datasets] [--scratch .cache/tasks]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { sha256Hex, type Split } from './corpus.js';
import { definitionsCard, supersenseCard, type SourceInfo } from './task_cards.js';
import { buildDefinitions, buildSupersense, licenseText, parseLexnames, parseSynsets, recordsToJsonl, SPLITS, topNounLabels, type Synset } from './tasks.js';

const PACKAGE = 'wordnet-base';
/** Noun supersenses kept (the most frequent lexicographer files), gloss length, and caps per split. */
export const SUPERSENSE = { labels: 12, maxWords: 25, caps: { train: 5000, validation: 1000, test: 1000 } as Record<Split, number> };
/** Parts of speech (a = adjective, s = satellite), target length and caps per split. */
export const DEFINITIONS = { pos: ['n', 'v', 'a', 's'], maxWords: 20, caps: { train: 8000, validation: 1000, test: 1000 } as Record<Split, number> };

/** File name → contents, per dataset folder. */
type Folder = Map<string, string>;

function arg(argv: string[], name: string, dflt: string): string {
  const i = argv.indexOf(name);
  return resolve(i >= 0 ? argv[i + 1] : dflt);
}

function findDeb(debs: string): string {
  const got = existsSync(debs) ? readdirSync(debs).filter((f) => f.startsWith(`${PACKAGE}_`) && f.endsWith('.deb')).sort() : [];
  if (got.length !== 1) throw new Error(`expected one ${PACKAGE}_*.deb in ${debs}, found ${got.length}; HINT: run scripts/data/build_corpus.sh first (it downloads the .debs), or pass --debs <dir>`);
  return join(debs, got[0]);
}

function withManifest(files: Folder, meta: Record<string, unknown>, records: Record<string, number>): Folder {
  const entries = Object.fromEntries([...files].map(([name, text]) => [name, { bytes: Buffer.byteLength(text), sha256: sha256Hex(text), ...(name in records ? { records: records[name] } : {}) }]));
  const out = new Map(files);
  out.set('manifest.json', JSON.stringify({ ...meta, files: entries }, null, 2) + '\n');
  return out;
}

/** Unpack the .deb into `scratch` and build both dataset folders in memory. */
function buildOnce(deb: string, scratch: string): Map<string, Folder> {
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  execFileSync('dpkg-deb', ['-x', deb, scratch]);
  const version = execFileSync('dpkg-deb', ['-f', deb, 'Version'], { encoding: 'utf8' }).trim();
  const dir = join(scratch, 'usr/share/wordnet');
  const copyrightFile = `usr/share/doc/${PACKAGE}/copyright`;
  const copyright = readFileSync(join(scratch, copyrightFile), 'utf8');
  const lexnames = parseLexnames(gunzipSync(readFileSync(join(scratch, 'usr/share/man/man5/lexnames.5WN.gz'))).toString('utf8'));
  if (lexnames.length !== 45) throw new Error(`lexnames.5WN lists ${lexnames.length} lexicographer files, expected 45; HINT: the package's manual page changed, check parseLexnames`);
  const all: Synset[] = [];
  for (const pos of ['noun', 'verb', 'adj', 'adv']) all.push(...parseSynsets(readFileSync(join(dir, `data.${pos}`), 'utf8')));
  const debBytes = readFileSync(deb);
  const src: SourceInfo = { package: PACKAGE, version, deb: deb.split('/').pop()!, deb_sha256: sha256Hex(debBytes), license: 'WordNet 3.0 license (see LICENSE)', copyright_file: copyrightFile, synsets: all.length };
  const notice = `The records in this folder are derived from WordNet 3.0, as shipped by Debian's ${PACKAGE} package\n(version ${version}, ${copyrightFile}). Its license:\n\n${licenseText(copyright, 'WordNet3.0')}`;

  const labels = topNounLabels(all, lexnames, SUPERSENSE.labels);
  const ss = buildSupersense(all, lexnames, labels, SUPERSENSE);
  const ssFiles: Folder = new Map();
  for (const sp of SPLITS) ssFiles.set(`${sp}.jsonl`, recordsToJsonl(ss[sp]));
  ssFiles.set('labels.json', JSON.stringify(labels, null, 2) + '\n');
  ssFiles.set('README.md', supersenseCard(src, labels, ss, SUPERSENSE));
  ssFiles.set('LICENSE', notice);
  const ssMeta = { name: 'makemost-supersense', task: 'text-classification', fields: { text: 'gloss', label: 'lexicographer file name', words: 'lemmas (provenance)' }, source: src, settings: SUPERSENSE, labels };

  const df = buildDefinitions(all, DEFINITIONS.pos, DEFINITIONS);
  const dfFiles: Folder = new Map();
  for (const sp of SPLITS) dfFiles.set(`${sp}.jsonl`, recordsToJsonl(df[sp]));
  dfFiles.set('README.md', definitionsCard(src, df, DEFINITIONS));
  dfFiles.set('LICENSE', notice);
  const dfMeta = { name: 'makemost-definitions', task: 'text2text-generation', fields: { source: 'word or phrase', target: 'definition' }, source: src, settings: DEFINITIONS };

  const counts = (d: Record<Split, unknown[]>) => Object.fromEntries(SPLITS.map((sp) => [`${sp}.jsonl`, d[sp].length]));
  return new Map([
    ['makemost-supersense', withManifest(ssFiles, ssMeta, counts(ss))],
    ['makemost-definitions', withManifest(dfFiles, dfMeta, counts(df))],
  ]);
}

function main(): void {
  const argv = process.argv.slice(2);
  const out = arg(argv, '--out', 'datasets');
  const scratch = arg(argv, '--scratch', '.cache/tasks');
  const deb = findDeb(arg(argv, '--debs', '.cache/corpus/debs'));
  const a = buildOnce(deb, join(scratch, 'unpack-a'));
  const b = buildOnce(deb, join(scratch, 'unpack-b'));
  for (const [name, files] of a) {
    for (const [file, text] of files) {
      if (b.get(name)?.get(file) !== text) throw new Error(`${name}/${file} differs between two builds from the same package; the build is not deterministic`);
    }
    const manifestPath = join(out, name, 'manifest.json');
    if (existsSync(manifestPath)) {
      const old = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files?: Record<string, { sha256: string }> };
      const now = JSON.parse(files.get('manifest.json')!) as { files: Record<string, { sha256: string }> };
      for (const [file, f] of Object.entries(now.files)) {
        const was = old.files?.[file]?.sha256;
        if (was && was !== f.sha256) throw new Error(`${name}/${file}: SHA-256 ${f.sha256} differs from the shipped ${was}; HINT: the package version or the build rules changed (see manifest.json) — delete ${manifestPath} to accept the new files`);
      }
    }
  }
  for (const [name, files] of a) {
    mkdirSync(join(out, name), { recursive: true });
    for (const [file, text] of files) writeFileSync(join(out, name, file), text);
    const sizes = [...files].map(([f, t]) => `${f} ${Buffer.byteLength(t)} B`).join(', ');
    process.stdout.write(`${name}: ${sizes}\n`);
  }
  rmSync(join(scratch, 'unpack-a'), { recursive: true, force: true });
  rmSync(join(scratch, 'unpack-b'), { recursive: true, force: true });
}

main();
