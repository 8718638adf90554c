#!/usr/bin/env node
// Builds the optional native kernels (native/build/Release/makemost_native.node) from source.
//
// Run by `npm install` (the package's install script) and by `npm run build:native`. Nothing is
// downloaded: node-gyp gets the Node headers from this machine (--nodedir), and when they or a C++
// compiler are missing the build is skipped. Under `npm install` any failure only prints a note and
// exits 0 — TF.js's own kernels are used instead; `--strict` (build:native) makes failures exit 1.
// MAKEMOST_NATIVE=0 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const force = process.argv.includes('--force');
const binary = join(here, 'build', 'Release', 'makemost_native.node');
const say = (msg) => process.stderr.write(`makemost native kernels: ${msg}\n`);

function finish(ok, msg) {
  say(msg);
  if (!ok && strict) process.exit(1);
  process.exit(0);
}

if (process.env.MAKEMOST_NATIVE === '0') finish(true, 'skipped (MAKEMOST_NATIVE=0)');

// Up to date: the binary is newer than every source file and loads.
const sources = [join(here, 'binding.gyp'), ...readdirSync(join(here, 'src')).map((f) => join(here, 'src', f))];
const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
if (!force && existsSync(binary) && statSync(binary).mtimeMs > newest && loads()) finish(true, 'up to date');

function loads() {
  const r = spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(binary)}); process.stdout.write(JSON.stringify(m.info()))`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
}

/** A folder with include/node/node_api.h and common.gypi, so node-gyp needs no header download. */
function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..'), '/usr', '/usr/local'].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')) && existsSync(join(d, 'include', 'node', 'common.gypi')));
}

/** node-gyp: the copy npm announces, a local install, or the one bundled inside npm. */
function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(here, '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(resolve(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.filter(Boolean).find((p) => existsSync(p));
}

const cxx = process.env.CXX || 'c++';
if (spawnSync(cxx, ['--version'], { encoding: 'utf8' }).status !== 0) finish(false, `skipped: no C++ compiler ('${cxx}'); TF.js kernels will be used`);
const dir = nodeDir();
if (!dir) finish(false, 'skipped: Node headers (include/node/node_api.h, common.gypi) not found on this machine, and they are not downloaded; TF.js kernels will be used');
const gyp = nodeGyp();
if (!gyp) finish(false, 'skipped: node-gyp not found (it ships with npm); TF.js kernels will be used');

const t0 = Date.now();
const r = spawnSync(process.execPath, [gyp, 'rebuild', '--directory', here, `--nodedir=${dir}`, '--jobs', 'max'], { encoding: 'utf8', env: { ...process.env, npm_config_nodedir: dir } });
if (r.status !== 0) {
  rmSync(binary, { force: true });
  const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').filter((l) => !l.startsWith('gyp info')).slice(-8).join('\n');
  finish(false, `build failed; TF.js kernels will be used.\n${tail}`);
}
const info = loads();
if (!info) {
  rmSync(binary, { force: true });
  finish(false, 'built, but the addon does not load; removed it, TF.js kernels will be used');
}
finish(true, `built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${info}`);
