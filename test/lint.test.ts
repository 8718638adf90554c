/**
 * House rules a machine can check (STYLE §3.4): imports point downward (DESIGN's layers and its "Never"
 * list), files stay within the size budget, and no Math.random, tf.keep or console/argv/network use
 * below the apps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
}
const ROOT = repoRoot();
const SRC = join(ROOT, 'src');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Layer of a source path: its rank, and its unit (siblings of one rank may not import each other). */
function layerOf(rel: string): { rank: number; unit: string } {
  const parts = rel.split('/');
  const top = parts.length === 1 ? parts[0].replace(/\.ts$/, '') : parts[0];
  const table: Record<string, number> = {
    errors: 0, backend: 0,
    io: 1, nn: 1, tokenizers: 1,
    models: 2,
    generation: 3, training: 3,
    methods: 4,
    cli: 5, server: 5, index: 5, node: 5,
  };
  if (!(top in table)) throw new Error(`lint: src/${rel} is in no layer of DESIGN.md; add its folder to the table`);
  return { rank: table[top], unit: top === 'index' || top === 'node' ? 'entry' : top };
}

const sources = walk(SRC).map((p) => ({ path: p, rel: relative(SRC, p), text: readFileSync(p, 'utf8') }));

test('imports point downward: no layer imports a higher one or a sibling of its own rank', () => {
  const bad: string[] = [];
  for (const f of sources) {
    if (f.rel.endsWith('.test.ts')) continue;
    const from = layerOf(f.rel);
    for (const m of f.text.matchAll(/(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2];
      const target = relative(SRC, resolve(dirname(f.path), spec)).replace(/\.js$/, '.ts');
      if (target.startsWith('..')) continue;
      const to = layerOf(target);
      if (to.rank > from.rank || (to.rank === from.rank && to.unit !== from.unit && to.rank !== 0)) {
        bad.push(`src/${f.rel} (${from.unit}) imports src/${target} (${to.unit})`);
      }
    }
  }
  assert.deepEqual(bad, []);
});

test('no Math.random, tf.keep, console, process.argv or fetch below the apps', () => {
  const bad: string[] = [];
  for (const f of sources) {
    if (layerOf(f.rel).rank >= 5 || f.rel.endsWith('.test.ts')) continue;
    const code = f.text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const pat of [/Math\.random\(/, /tf\.keep\(/, /\bconsole\./, /process\.argv/, /\bfetch\(/]) {
      if (pat.test(code)) bad.push(`src/${f.rel}: ${pat.source}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no source file over 450 lines (STYLE habit 9); models and generation aim for 150-300', () => {
  const big = sources.filter((f) => f.text.split('\n').length > 450).map((f) => `src/${f.rel}: ${f.text.split('\n').length}`);
  assert.deepEqual(big, []);
});
