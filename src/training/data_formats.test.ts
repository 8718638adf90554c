/**
 * Data file parsing against hand-written files: RFC 4180 quoting (delimiters, line breaks and "" inside
 * quotes, CRLF), JSON lines, JSON arrays, plain text by line or whole file, strict UTF-8, and errors that
 * name the file and line; Parquet without hyparquet names the package to install.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, UnsupportedError } from '../errors.js';
import { decodeUtf8, formatOf, parseCsv, parseCsvRecords, parseDataBytes, parseJson, parseJsonLines, parseText, readDataFile } from './data_formats.js';

const bytes = (s: string) => new TextEncoder().encode(s);

test('CSV: quoted delimiters, line breaks and doubled quotes, CRLF, blank lines, record start lines', () => {
  const text = 'text,label\r\n"a, b",1\r\n\r\n"say ""hi""\nthere",0\nplain,1\n"",0';
  const t = parseCsv(text, 'f.csv');
  assert.deepEqual(t.columns, ['text', 'label']);
  assert.deepEqual(t.rows, [
    { text: 'a, b', label: '1' },
    { text: 'say "hi"\nthere', label: '0' },
    { text: 'plain', label: '1' },
    { text: '', label: '0' },
  ]);
  assert.deepEqual(t.locations, [2, 4, 6, 7]);
  assert.deepEqual(parseCsvRecords('a,,c\n', 'x').map((r) => r.fields), [['a', '', 'c']]);
  assert.deepEqual(parseCsvRecords('a,b\n', 'x').length, 1, 'a trailing newline adds no record');
});

test('TSV uses tabs; commas are plain characters there', () => {
  const t = parseCsv('text\tlabel\nx, y\tpos\n', 'f.tsv', '\t');
  assert.deepEqual(t.rows, [{ text: 'x, y', label: 'pos' }]);
  assert.equal(t.format, 'tsv');
});

test('CSV errors name the file and line: unclosed quote, text after a quote, wrong field count, duplicate header', () => {
  assert.throws(() => parseCsv('text,label\nok,1\n"never closed,1\nx,0\n', 'f.csv'), (e: Error) => e instanceof ConfigError && /f\.csv line 3: a quoted field is never closed/.test(e.message));
  assert.throws(() => parseCsv('text,label\n"a"b,1\n', 'f.csv'), /f\.csv line 2: text after a closing quote/);
  assert.throws(() => parseCsv('text,label\na,1\nb,1,2\n', 'f.csv'), /f\.csv line 3: 3 field\(s\), but the header has 2 \(text, label\)/);
  assert.throws(() => parseCsv('text,text\na,b\n', 'f.csv'), /names column 'text' twice/);
});

test('JSON lines: objects per line, blank lines skipped; malformed or non-object lines name the line', () => {
  const t = parseJsonLines('{"text": "a", "label": 1}\n\n{"text": "b", "label": 0, "extra": true}\r\n', 'd.jsonl');
  assert.deepEqual(t.rows, [{ text: 'a', label: 1 }, { text: 'b', label: 0, extra: true }]);
  assert.deepEqual(t.locations, [1, 3]);
  assert.deepEqual(t.columns, ['text', 'label', 'extra']);
  assert.throws(() => parseJsonLines('{"text": "a"}\n{"text": \n', 'd.jsonl'), (e: Error) => e instanceof ConfigError && /d\.jsonl line 2 is not valid JSON/.test(e.message));
  assert.throws(() => parseJsonLines('{"text": "a"}\n[1, 2]\n', 'd.jsonl'), /d\.jsonl line 2 holds an array, expected a JSON object/);
});

test('JSON: an array of objects, or JSON lines in a .json file', () => {
  assert.deepEqual(parseJson('[{"text": "a"}, {"text": "b"}]', 'd.json').rows, [{ text: 'a' }, { text: 'b' }]);
  assert.deepEqual(parseJson('{"text": "a"}\n{"text": "b"}\n', 'd.json').rows, [{ text: 'a' }, { text: 'b' }]);
  assert.throws(() => parseJson('[{"text": "a"}, 3]', 'd.json'), /element 1 of the array is not a JSON object/);
});

test('plain text: one row per non-blank line, or the whole file', () => {
  const t = parseText('first line\n\n  \nsecond\r\n', 'c.txt');
  assert.deepEqual(t.rows, [{ text: 'first line' }, { text: 'second' }]);
  assert.deepEqual(t.locations, [1, 4]);
  assert.deepEqual(parseText('a\nb\n', 'c.txt', 'file').rows, [{ text: 'a\nb\n' }]);
  assert.deepEqual(parseText('\n \n', 'c.txt', 'file').rows, []);
});

test('UTF-8 is strict: a bad byte names its line; a BOM is dropped', async () => {
  const good = bytes('text\nline two\n');
  const bad = new Uint8Array([...good, 0x61, 0xff, 0x62, 0x0a, ...bytes('after\n')]);
  assert.throws(() => decodeUtf8(bad, 'c.txt'), (e: Error) => e instanceof ConfigError && /c\.txt line 3 is not valid UTF-8/.test(e.message) && /HINT: save the file as UTF-8/.test(e.message));
  await assert.rejects(parseDataBytes(bad, 'c.jsonl'), /c\.jsonl line 3 is not valid UTF-8/);
  assert.equal(decodeUtf8(new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('x')]), 'b.txt'), 'x');
});

test('formats come from the extension; unknown ones and missing files fail clearly', async () => {
  assert.equal(formatOf('a/b.JSONL'), 'jsonl');
  assert.equal(formatOf('x.parquet'), 'parquet');
  assert.equal(formatOf('x.tsv'), 'tsv');
  assert.throws(() => formatOf('x.xlsx'), /cannot tell the format of data file 'x\.xlsx'/);
  await assert.rejects(readDataFile('/nonexistent/d.jsonl'), /cannot read data file '\/nonexistent\/d\.jsonl': file not found/);
  const dir = mkdtempSync(join(tmpdir(), 'makemost-fmt-'));
  try {
    writeFileSync(join(dir, 'd.csv'), 'text,label\nhello,1\n');
    const t = await readDataFile(join(dir, 'd.csv'));
    assert.deepEqual(t.rows, [{ text: 'hello', label: '1' }]);
    const txt = await readDataFile(join(dir, 'd.csv'), { format: 'text', textMode: 'file' });
    assert.deepEqual(txt.rows, [{ text: 'text,label\nhello,1\n' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Parquet files (written by hyparquet-writer) read as rows; a corrupt file names itself', async () => {
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const buf = parquetWriteBuffer({ columnData: [
    { name: 'text', data: ['a cat', 'é and emoji 🙂', ''], type: 'STRING' },
    { name: 'label', data: [0, 1, 1], type: 'INT32' },
  ] });
  const t = await parseDataBytes(new Uint8Array(buf), 'train.parquet');
  assert.deepEqual(t.columns, ['text', 'label']);
  assert.deepEqual(t.rows, [{ text: 'a cat', label: 0 }, { text: 'é and emoji 🙂', label: 1 }, { text: '', label: 1 }]);
  await assert.rejects(parseDataBytes(new Uint8Array([80, 65, 82, 49, 0, 0, 0]), 'bad.parquet'), (e: Error) => /bad\.parquet/.test(e.message));
});
