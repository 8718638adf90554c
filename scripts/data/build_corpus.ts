/**
 * Builds the English training corpus of the default models from Debian packages: downloads the .debs with
 * `apt-get download`, unpacks them with `dpkg-deb -x` (nothing is installed), extracts documents
 * (fortune files; WordNet glosses with their example sentences), splits them by the hash of their text,
 * and writes `<out>/{train,validation,test}.jsonl` and `<out>/manifest.json` (package, version, license,
 * sizes, SHA-256 of every output). The extraction runs twice from two fresh unpackings and the script
 * fails unless both give the same bytes; a second build compares against the first manifest's hashes.
 *
 *   node dist/scripts/data/build_corpus.js [--out .cache/corpus]
 *
 * The corpus itself is not committed: it is the packages' text, rebuilt on demand.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, lstatSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseFortunes, parseWordnetData, sha256Hex, splitOf, toJsonl, type Doc, type Split } from './corpus.js';

/** The packages read, and the license line taken from their copyright file. */
export const PACKAGES = ['fortunes-min', 'fortunes', 'wordnet-base'] as const;

/** Fortune files left out: pictures drawn in characters, and a file of non-English text. */
const SKIP_FORTUNES = new Set(['ascii-art', 'translate-me']);

interface PackageInfo {
  package: string;
  version: string;
  deb: string;
  deb_bytes: number;
  deb_sha256: string;
  license: string;
  copyright_file: string;
  documents: number;
  text_bytes: number;
}

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function fetchDeb(pkg: string, debs: string): string {
  const have = readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (have) return join(debs, have);
  sh('apt-get', ['download', pkg], debs);
  const got = readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!got) throw new Error(`apt-get download ${pkg} wrote no .deb in ${debs}; HINT: run apt-get update`);
  return join(debs, got);
}

function licenseOf(copyright: string): string {
  const m = /^License:\s*(\S+)/m.exec(copyright);
  if (m) return m[1];
  if (/BSD copyright/i.test(copyright)) return 'BSD (see copyright file)';
  return 'see copyright file';
}

function extract(pkg: string, root: string): Doc[] {
  const docs: Doc[] = [];
  if (pkg.startsWith('fortunes')) {
    const dir = join(root, 'usr/share/games/fortunes');
    for (const f of readdirSync(dir).sort()) {
      const path = join(dir, f);
      if (f.includes('.') || SKIP_FORTUNES.has(f) || lstatSync(path).isSymbolicLink()) continue;
      // Overstruck characters (`_\bx`) are underlining for terminals: keep the letter.
      const text = readFileSync(path, 'utf8').replace(/[^\n]\x08/g, '');
      for (const t of parseFortunes(text)) docs.push({ text: t, source: `${pkg}/${f}` });
    }
  } else if (pkg === 'wordnet-base') {
    const dir = join(root, 'usr/share/wordnet');
    for (const pos of ['noun', 'verb', 'adj', 'adv']) {
      for (const t of parseWordnetData(readFileSync(join(dir, `data.${pos}`), 'utf8'))) docs.push({ text: t, source: `wordnet/${pos}` });
    }
  }
  return docs;
}

/** Unpack every package into `scratch` and return the split documents and per-package facts. */
function buildOnce(debPaths: Map<string, string>, scratch: string): { splits: Record<Split, Doc[]>; info: PackageInfo[] } {
  rmSync(scratch, { recursive: true, force: true });
  const splits: Record<Split, Doc[]> = { train: [], validation: [], test: [] };
  const info: PackageInfo[] = [];
  const seen = new Set<string>();
  for (const pkg of PACKAGES) {
    const deb = debPaths.get(pkg)!;
    const root = join(scratch, pkg);
    mkdirSync(root, { recursive: true });
    sh('dpkg-deb', ['-x', deb, root]);
    const version = sh('dpkg-deb', ['-f', deb, 'Version']).trim();
    const copyrightFile = `usr/share/doc/${pkg}/copyright`;
    const copyright = readFileSync(join(root, copyrightFile), 'utf8');
    const docs = extract(pkg, root);
    let kept = 0;
    let bytes = 0;
    for (const d of docs) {
      if (seen.has(d.text)) continue; // fortunes-min's files recur in fortunes
      seen.add(d.text);
      splits[splitOf(d.text)].push(d);
      kept++;
      bytes += Buffer.byteLength(d.text);
    }
    const debBytes = readFileSync(deb);
    info.push({ package: pkg, version, deb: deb.split('/').pop()!, deb_bytes: debBytes.length, deb_sha256: sha256Hex(debBytes), license: licenseOf(copyright), copyright_file: copyrightFile, documents: kept, text_bytes: bytes });
  }
  return { splits, info };
}

function main(): void {
  const argv = process.argv.slice(2);
  const outIdx = argv.indexOf('--out');
  const out = resolve(outIdx >= 0 ? argv[outIdx + 1] : '.cache/corpus');
  const debs = join(out, 'debs');
  mkdirSync(debs, { recursive: true });
  const debPaths = new Map(PACKAGES.map((p) => [p, fetchDeb(p, debs)]));
  const a = buildOnce(debPaths, join(out, 'unpack-a'));
  const b = buildOnce(debPaths, join(out, 'unpack-b'));
  const files: Record<string, { documents: number; bytes: number; sha256: string }> = {};
  for (const split of ['train', 'validation', 'test'] as Split[]) {
    const text = toJsonl(a.splits[split]);
    const again = toJsonl(b.splits[split]);
    if (sha256Hex(text) !== sha256Hex(again)) throw new Error(`${split}.jsonl differs between two builds from the same packages; the extraction is not deterministic`);
    files[`${split}.jsonl`] = { documents: a.splits[split].length, bytes: Buffer.byteLength(text), sha256: sha256Hex(text) };
  }
  const manifestPath = join(out, 'manifest.json');
  if (existsSync(manifestPath)) {
    const old = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: typeof files };
    for (const [name, f] of Object.entries(files)) {
      if (old.files?.[name] && old.files[name].sha256 !== f.sha256) throw new Error(`${name}: SHA-256 ${f.sha256} differs from the earlier build's ${old.files[name].sha256}; HINT: a package version changed (see manifest.json), or delete ${manifestPath} to accept the new corpus`);
    }
  }
  for (const split of ['train', 'validation', 'test'] as Split[]) writeFileSync(join(out, `${split}.jsonl`), toJsonl(a.splits[split]));
  const manifest = { description: 'English text from Debian packages, for the makemost default models', split_rule: 'SHA-256(text) first 32 bits / 2^32: < 0.02 test, < 0.04 validation, else train; duplicates dropped', packages: a.info, files };
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  rmSync(join(out, 'unpack-a'), { recursive: true, force: true });
  rmSync(join(out, 'unpack-b'), { recursive: true, force: true });
  process.stdout.write(JSON.stringify(manifest, null, 2) + '\n');
}

main();
