/**
 * `makemost perplexity` and `makemost classify-few-shot`: hidden-state optimisation (Yoshida & Gimpel
 * 2021) on the command line — streaming perplexity with and without HSO (gain and time factor), and
 * prompt-based few-shot accuracy with and without HSO, optionally calibrated. Registered by main.ts.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError } from '../errors.js';
import { fewShotFromText, type TextFewShotOptions } from '../methods/hso/fewshot.js';
import { streamingPerplexity, type HsoOptions, type StreamingResult } from '../methods/hso/perplexity.js';
import type { LabelledText } from '../methods/hso/prompt.js';
import { fmt, table } from './format.js';
import { nonNegativeInt, nonNegativeNumber, positiveInt } from './args.js';
import { loadCausal } from './generate.js';


/** Flags shared by both commands for the slot Adam. */
function adamFlags(c: Command, steps: number, stepsHelp: string): Command {
  return c
    .option('--hso', 'also evaluate with hidden-state optimisation')
    .option('--lr <x>', 'HSO learning rate', nonNegativeNumber, 1e-3)
    .option('--steps <n>', stepsHelp, nonNegativeInt, steps)
    .option('--beta1 <x>', 'Adam β1', nonNegativeNumber, 0.9)
    .option('--beta2 <x>', 'Adam β2', nonNegativeNumber, 0.999)
    .option('--eps <x>', 'Adam ε', nonNegativeNumber, 1e-8)
    .addOption(new Option('--bias-correction <mode>', "Adam bias-correction count: each slot's own or the optimiser's").choices(['per-slot', 'global']).default('per-slot'))
    .option('--no-bos', 'do not prepend the BOS token')
    .option('--json', 'print JSON');
}

interface AdamFlags {
  hso?: boolean;
  lr: number;
  steps: number;
  beta1: number;
  beta2: number;
  eps: number;
  biasCorrection: 'per-slot' | 'global';
  bos: boolean;
  json?: boolean;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the ${what} file ${path}: ${(e as Error).message}`);
  }
}

/** JSON lines of {"text": …, "label": word or class index}. */
export function readLabelled(path: string, labels: string[]): LabelledText[] {
  return readText(path, 'examples').split('\n').flatMap((line, i) => {
    if (!line.trim()) return [];
    let row: { text?: unknown; label?: unknown };
    try {
      row = JSON.parse(line) as typeof row;
    } catch {
      throw new ConfigError(`${path} line ${i + 1} is not JSON`, 'write one object per line: {"text": "...", "label": "positive"}');
    }
    const label = typeof row.label === 'number' ? row.label : labels.indexOf(String(row.label));
    if (typeof row.text !== 'string' || !Number.isInteger(label) || label < 0 || label >= labels.length) {
      throw new ConfigError(`${path} line ${i + 1}: expected {"text": string, "label": one of ${labels.join(', ')} or an index below ${labels.length}}, found ${line.slice(0, 120)}`);
    }
    return [{ text: row.text, label }];
  });
}

/** A flag value with JSON-style escapes (so `--separator "\n\n"` means two newlines). */
const unescape = (s: string): string => (s.includes('\\') ? (JSON.parse(`"${s.replace(/"/g, '\\"')}"`) as string) : s);

function streamSummary(r: StreamingResult) {
  return { perplexity: r.perplexity, nll_per_token: r.nll / r.tokens, tokens: r.tokens, windows: r.windows, seconds: r.seconds, aborted: r.aborted };
}

/** Add `perplexity` and `classify-few-shot` to the program. */
export function registerHsoCommands(program: Command, write: (s: string) => void = (s) => process.stdout.write(s)): void {
  const signal = () => {
    const c = new AbortController();
    process.once('SIGINT', () => c.abort());
    return c.signal;
  };

  adamFlags(program.command('perplexity')
    .description('streaming perplexity of a text file; with --hso also with hidden-state optimisation, printing both, the gain and the time factor')
    .argument('<dir>', 'causal LM folder (GPT-2, Llama)')
    .requiredOption('--data <file>', 'UTF-8 text file')
    .option('--window <k>', 'tokens per window (one forward pass, and one HSO update, each)', positiveInt, 64)
    .option('--max-cache <n>', 'most cached positions; the oldest are evicted (default: context − window)', nonNegativeInt)
    .option('--max-tokens <n>', 'score only the first n tokens of the file', positiveInt)
    .addOption(new Option('--positions <mode>', 'position ids of new tokens: absolute stream positions, or the cache length (a sliding cache)').choices(['absolute', 'cache']))
    .option('--update-current-window', "HSO also updates each window's own new keys/values with its loss"), 1, 'HSO gradient steps per window')
    .action(async (dir: string, o: AdamFlags & { data: string; window: number; maxCache?: number; maxTokens?: number; positions?: 'absolute' | 'cache'; updateCurrentWindow?: boolean }) => {
      if (o.hso && o.steps < 1) throw new ConfigError('--steps must be at least 1 for streaming HSO', 'use --steps 1');
      const l = await loadCausal(dir);
      try {
        let ids = l.tokenizer.encode(readText(o.data, 'data'), { addSpecialTokens: false }).ids;
        const bos = l.tokenizer.bosTokenId;
        if (o.bos && bos !== undefined && ids[0] !== bos) ids = [bos, ...ids];
        if (o.maxTokens) ids = ids.slice(0, o.maxTokens);
        const dims = l.model.dims();
        // Rotary models report no position limit; their trained context is still a sensible cache bound.
        const ctx = Number.isFinite(dims.maxPositions) ? dims.maxPositions : Number(l.model.config.max_position_embeddings);
        const maxCache = o.maxCache ?? (Number.isFinite(ctx) && ctx > o.window ? ctx - o.window : undefined);
        const base = { window: o.window, maxCache, positions: o.positions, signal: signal() };
        const plain = await streamingPerplexity(l.model, ids, base);
        const hsoOpts: HsoOptions = { lr: o.lr, steps: o.steps, beta1: o.beta1, beta2: o.beta2, eps: o.eps, biasCorrection: o.biasCorrection, updateCurrentWindow: !!o.updateCurrentWindow };
        const hso = o.hso ? await streamingPerplexity(l.model, ids, { ...base, hso: hsoOpts }) : undefined;
        const result = {
          model: dir, data: o.data, tokens: plain.tokens, window: plain.window, max_cache: plain.maxCache, positions: plain.positions,
          plain: streamSummary(plain),
          ...(hso ? { hso: { ...streamSummary(hso), settings: hsoOpts }, gain: plain.perplexity - hso.perplexity, relative_gain: 1 - hso.perplexity / plain.perplexity, time_factor: hso.seconds / plain.seconds } : {}),
        };
        if (o.json) return write(JSON.stringify(result, null, 2) + '\n');
        const rows: (string | number)[][] = [['plain streaming', plain.perplexity, plain.nll / plain.tokens, plain.seconds]];
        if (hso) rows.push([`HSO (lr ${o.lr}, ${o.steps} step${o.steps > 1 ? 's' : ''}/window${o.updateCurrentWindow ? ', current window too' : ''})`, hso.perplexity, hso.nll / hso.tokens, hso.seconds]);
        let text = `${dir}: ${plain.tokens} tokens scored, window ${plain.window}, cache ≤ ${plain.maxCache} positions (${plain.positions} positions)\n\n${table(['method', 'perplexity', 'nll/token', 'seconds'], rows)}\n`;
        if (hso) text += `\ngain: ${fmt(plain.perplexity - hso.perplexity)} perplexity (${fmt(100 * (1 - hso.perplexity / plain.perplexity))}%); HSO took ${fmt(hso.seconds / plain.seconds)}× the time of plain streaming\n`;
        if (plain.aborted || hso?.aborted) text += 'interrupted: the figures cover the windows scored before Ctrl-C\n';
        write(text);
      } finally {
        l.model.dispose();
      }
    });

  adamFlags(program.command('classify-few-shot')
    .description('prompt-based few-shot classification: accuracy with and (--hso) without hidden-state optimisation of the prompt, optionally calibrated')
    .argument('<dir>', 'causal LM folder (GPT-2, Llama)')
    .requiredOption('--train <file>', 'demonstrations: JSON lines {"text": ..., "label": word or index}')
    .requiredOption('--test <file>', 'test examples, same format')
    .requiredOption('--template <t>', 'e.g. "Review: {text} Sentiment: {label}"')
    .requiredOption('--labels <words>', 'verbaliser words in class order, comma-separated (e.g. positive,negative)')
    .option('--shots <k>', 'use the first k demonstrations (default all)', positiveInt)
    .option('--separator <s>', 'between demonstrations (escapes such as \\n allowed)', '\\n')
    .addOption(new Option('--loss <tokens>', 'HSO loss over all prompt tokens or only the label words').choices(['all', 'labels']).default('all'))
    .option('--calibrate', 'contextual calibration (Zhao et al. 2021): divide by p(label | content-free input)')
    .option('--content-free <text>', 'the content-free input for --calibrate', 'N/A')
    .option('--batch-size <n>', 'candidates per forward pass', positiveInt, 16), 10, 'HSO steps on the prompt')
    .action(async (dir: string, o: AdamFlags & { train: string; test: string; template: string; labels: string; shots?: number; separator: string; loss: 'all' | 'labels'; calibrate?: boolean; contentFree: string; batchSize: number }) => {
      const labels = o.labels.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      const demos = readLabelled(o.train, labels).slice(0, o.shots);
      const tests = readLabelled(o.test, labels);
      if (tests.length === 0) throw new ConfigError(`the test file ${o.test} has no examples`);
      const format = { template: o.template, labels, separator: unescape(o.separator), bos: o.bos };
      const l = await loadCausal(dir);
      try {
        const common: TextFewShotOptions = { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, biasCorrection: o.biasCorrection, lossOn: o.loss, batchSize: o.batchSize, contentFree: o.calibrate ? o.contentFree : undefined };
        const runs = [{ name: 'no HSO (baseline)', steps: 0 }, ...(o.hso ? [{ name: `HSO (${o.steps} steps, lr ${o.lr}, loss on ${o.loss})`, steps: o.steps }] : [])];
        const results = [];
        for (const run of runs) {
          const t0 = performance.now();
          const r = await fewShotFromText(l.model, l.tokenizer, format, demos, tests, { ...common, steps: run.steps });
          results.push({ method: run.name, steps: run.steps, accuracy: r.accuracy!, calibrated_accuracy: r.calibratedAccuracy, prompt_loss: r.promptLosses, seconds: (performance.now() - t0) / 1000, prompt_tokens: r.encoded.prompt.length, predictions: r.predictions.map((p) => p.calibrated ? p.calibrated.predicted : p.predicted) });
        }
        if (o.json) return write(JSON.stringify({ model: dir, demonstrations: demos.length, tests: tests.length, labels, results }, null, 2) + '\n');
        const head = ['method', 'accuracy', ...(o.calibrate ? ['calibrated'] : []), 'prompt loss', 'seconds'];
        const rows = results.map((r) => [r.method, r.accuracy, ...(o.calibrate ? [r.calibrated_accuracy!] : []), r.prompt_loss.length > 1 ? `${fmt(r.prompt_loss[0])} → ${fmt(r.prompt_loss[r.prompt_loss.length - 1])}` : fmt(r.prompt_loss[0]), r.seconds]);
        write(`${dir}: ${demos.length} demonstrations (${results[0].prompt_tokens} prompt tokens), ${tests.length} test examples, labels ${labels.join(' / ')}\n\n${table(head, rows)}\n`);
      } finally {
        l.model.dispose();
      }
    });
}
