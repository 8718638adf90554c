/**
 * Reading training data files into a table of rows: JSON lines (HF `datasets`' "json" loader, one object
 * per line; a file holding one JSON array also works), CSV / TSV (RFC 4180 quoting: fields in double
 * quotes may hold the delimiter, line breaks and `""` for a quote; the first record is the header),
 * plain text (HF's "text" loader: one row per non-blank line, or the whole file as one row) and Parquet
 * through the optional `hyparquet` package. Text must be valid UTF-8; every error names the file and the
 * line (or row). The parsers take bytes, so browsers can use them; `readDataFile` is the Node entry.
 */
import { ConfigError, UnsupportedError } from '../errors.js';

/** The file formats we read. */
export type DataFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'text' | 'parquet';

/** Rows read from one file. */
export interface DataTable {
  /** The file, for messages. */
  source: string;
  format: DataFormat;
  /** Column names in first-seen order. */
  columns: string[];
  rows: Record<string, unknown>[];
  /** Where each row starts, 1-based: a line number (text formats) or a row number (Parquet). */
  locations: number[];
  unit: 'line' | 'row';
}

/** Options of {@link readDataFile} / {@link parseDataBytes}. */
export interface ReadOptions {
  /** Default: from the file extension. */
  format?: DataFormat;
  /** Plain text: one row per non-blank line (default), or the whole file as one row. */
  textMode?: 'line' | 'file';
}

const EXTENSIONS: Record<string, DataFormat> = {
  jsonl: 'jsonl', ndjson: 'jsonl', json: 'json', csv: 'csv', tsv: 'tsv', txt: 'text', text: 'text', parquet: 'parquet',
};

/** The format a file name implies (its extension); throws for unknown extensions. */
export function formatOf(path: string): DataFormat {
  const ext = /\.([A-Za-z]+)$/.exec(path)?.[1]?.toLowerCase();
  const f = ext ? EXTENSIONS[ext] : undefined;
  if (!f) throw new ConfigError(`cannot tell the format of data file '${path}' from its extension`, `name it .jsonl, .json, .csv, .tsv, .txt or .parquet, or pass the format (--format ${Object.values(EXTENSIONS).filter((v, i, a) => a.indexOf(v) === i).join('|')})`);
  return f;
}

/** "file:line N" for messages. */
export function rowLocation(table: DataTable, i: number): string {
  return `${table.source} ${table.unit} ${table.locations[i]}`;
}

/** Decode UTF-8 strictly (a BOM is dropped); on bad bytes, name the line and byte offset. */
export function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const strict = new TextDecoder('utf-8', { fatal: true });
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i < bytes.length && bytes[i] !== 0x0a) continue;
      try {
        strict.decode(bytes.subarray(start, i));
      } catch {
        throw new ConfigError(`${source} line ${line} is not valid UTF-8 (bytes ${start}–${i} of the file)`, 'save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or remove the broken line');
      }
      line += 1;
      start = i + 1;
    }
    throw new ConfigError(`${source} is not valid UTF-8`, 'save the file as UTF-8');
  }
}

function table(source: string, format: DataFormat, rows: Record<string, unknown>[], locations: number[], unit: 'line' | 'row' = 'line'): DataTable {
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return { source, format, columns: [...seen], rows, locations, unit };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One JSON object per non-blank line. */
export function parseJsonLines(text: string, source: string): DataTable {
  const rows: Record<string, unknown>[] = [];
  const locations: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new ConfigError(`${source} line ${i + 1} is not valid JSON: ${(e as Error).message}`, 'each line of a .jsonl file must be one JSON object, e.g. {"text": "…", "label": 1}');
    }
    if (!isObject(v)) throw new ConfigError(`${source} line ${i + 1} holds ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}, expected a JSON object`, 'each line of a .jsonl file must be one JSON object, e.g. {"text": "…", "label": 1}');
    rows.push(v);
    locations.push(i + 1);
  });
  return table(source, 'jsonl', rows, locations);
}

/** A .json file: an array of objects (or, as HF's loader accepts, JSON lines). */
export function parseJson(text: string, source: string): DataTable {
  if (!text.trimStart().startsWith('[')) return { ...parseJsonLines(text, source), format: 'json' };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${source} is not valid JSON: ${(e as Error).message}`, 'fix the file, or write one object per line as .jsonl');
  }
  const arr = v as unknown[];
  const bad = arr.findIndex((r) => !isObject(r));
  if (bad >= 0) throw new ConfigError(`${source}: element ${bad} of the array is not a JSON object`, 'write one object per example, e.g. [{"text": "…", "label": 1}, …]');
  return table(source, 'json', arr as Record<string, unknown>[], arr.map((_, i) => i + 1), 'row');
}

/** Records of an RFC 4180 text, each with the line it starts on (blank lines are skipped). */
export function parseCsvRecords(text: string, source: string, delimiter = ','): { fields: string[]; line: number }[] {
  const out: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let quotedAt = 0; // line where the open quote started, 0 when not in quotes
  let wasQuoted = false;
  let i = 0;
  const endField = () => {
    fields.push(field);
    field = '';
    wasQuoted = false;
  };
  const endRecord = () => {
    endField();
    out.push({ fields, line: recordLine });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quotedAt) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quotedAt = 0;
        i += 1;
        const next = text[i];
        if (next !== undefined && next !== delimiter && next !== '\n' && next !== '\r') {
          throw new ConfigError(`${source} line ${line}: text after a closing quote (${JSON.stringify(text.slice(i, i + 10))})`, 'inside a quoted field write a quote as "" (RFC 4180), e.g. "say ""hi"""');
        }
        continue;
      }
      if (c === '\n') line += 1;
      field += c;
      i += 1;
      continue;
    }
    if (c === '"' && field === '' && !wasQuoted) {
      quotedAt = line;
      wasQuoted = true;
      i += 1;
    } else if (c === delimiter) {
      endField();
      i += 1;
    } else if (c === '\n' || c === '\r') {
      // A line with nothing on it is skipped, as pandas and HF datasets do.
      if (fields.length || field !== '' || wasQuoted) endRecord();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line += 1;
      recordLine = line;
    } else {
      field += c;
      i += 1;
    }
  }
  if (quotedAt) throw new ConfigError(`${source} line ${quotedAt}: a quoted field is never closed`, 'close the field with a double quote; write a quote inside it as ""');
  if (fields.length || field !== '' || wasQuoted) endRecord();
  return out;
}

/** CSV (or TSV) with a header record; every record must have as many fields as the header. */
export function parseCsv(text: string, source: string, delimiter = ','): DataTable {
  const records = parseCsvRecords(text, source, delimiter);
  const format: DataFormat = delimiter === '\t' ? 'tsv' : 'csv';
  if (!records.length) return table(source, format, [], []);
  const header = records[0].fields.map((h) => h.trim());
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined) throw new ConfigError(`${source} line ${records[0].line}: the header names column '${dup}' twice`, 'give every column a distinct name');
  const rows = records.slice(1).map(({ fields, line }) => {
    if (fields.length !== header.length) {
      throw new ConfigError(`${source} line ${line}: ${fields.length} field(s), but the header has ${header.length} (${header.join(', ')})`, 'quote fields that contain the delimiter or line breaks ("a, b"), and write a quote inside them as ""');
    }
    return Object.fromEntries(header.map((h, j) => [h, fields[j]]));
  });
  return { source, format, columns: header, rows, locations: records.slice(1).map((r) => r.line), unit: 'line' };
}

/** Plain text: column `text`, one row per non-blank line, or the whole file as one row. */
export function parseText(text: string, source: string, mode: 'line' | 'file' = 'line'): DataTable {
  if (mode === 'file') return text.trim() === '' ? table(source, 'text', [], []) : table(source, 'text', [{ text }], [1]);
  const rows: Record<string, unknown>[] = [];
  const locations: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    rows.push({ text: line });
    locations.push(i + 1);
  });
  return { source, format: 'text', columns: ['text'], rows, locations, unit: 'line' };
}

// The part of hyparquet we use (it is an optional dependency, loaded on first use).
interface Hyparquet {
  parquetReadObjects(options: { file: ArrayBuffer; columns?: string[] }): Promise<Record<string, unknown>[]>;
}

async function loadHyparquet(source: string): Promise<Hyparquet> {
  const name = 'hyparquet'; // a variable, so the compiler does not require the package
  try {
    return (await import(name)) as Hyparquet;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new UnsupportedError(`reading the Parquet file '${source}' needs the package 'hyparquet', which is not installed`, 'run `npm install hyparquet`, or convert the file to JSON lines or CSV');
    }
    throw e;
  }
}

// Parquet INT64 columns come back as bigint; labels and texts want plain numbers.
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  return v;
}

/** A Parquet file through hyparquet (row numbers are 1-based). */
export async function parseParquet(bytes: Uint8Array, source: string): Promise<DataTable> {
  const hp = await loadHyparquet(source);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let rows: Record<string, unknown>[];
  try {
    rows = await hp.parquetReadObjects({ file: buffer });
  } catch (e) {
    throw new ConfigError(`cannot read the Parquet file '${source}': ${(e as Error).message}`, 'check that the file is Parquet; compressions other than snappy may need the hyparquet-compressors package');
  }
  const clean = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])));
  return table(source, 'parquet', clean, clean.map((_, i) => i + 1), 'row');
}

/** Parse a file's bytes in the given format. */
export async function parseDataBytes(bytes: Uint8Array, source: string, opts: ReadOptions = {}): Promise<DataTable> {
  const format = opts.format ?? formatOf(source);
  if (format === 'parquet') return parseParquet(bytes, source);
  const text = decodeUtf8(bytes, source);
  switch (format) {
    case 'jsonl': return parseJsonLines(text, source);
    case 'json': return parseJson(text, source);
    case 'csv': return parseCsv(text, source, ',');
    case 'tsv': return parseCsv(text, source, '\t');
    case 'text': return parseText(text, source, opts.textMode);
  }
}

/** Read a data file from disk (Node). */
export async function readDataFile(path: string, opts: ReadOptions = {}): Promise<DataTable> {
  const format = opts.format ?? formatOf(path);
  const { readFile } = await import('node:fs/promises');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const missing = (e as { code?: string }).code === 'ENOENT';
    throw new ConfigError(`cannot read data file '${path}': ${missing ? 'file not found' : (e as Error).message}`, missing ? 'check the path' : 'check the file permissions');
  }
  return parseDataBytes(bytes, path, { ...opts, format });
}
