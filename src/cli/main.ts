/**
 * The `makemost` command line. Each command is a thin shell over the library: parse options, call,
 * print a table (or JSON with --json). Errors from the library print their message and HINT, exit 1.
 */
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { initBackend, type BackendName } from '../backend/index.js';
import { MakemostError } from '../errors.js';
import { formatInfo, modelInfo } from './info.js';
import { fillMask, formatFillMask, formatScore, scoreText } from './score.js';
import { ensureTinyModels } from './tiny.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write((json ? JSON.stringify(value, null, 2) : text()) + '\n');
}

/** Build the program (exported for tests). */
export function program(): Command {
  const p = new Command('makemost')
    .description('Make the most of a pretrained transformer: load Hugging Face checkpoints, score, fill masks (more to come).')
    .option('--backend <name>', 'TF.js backend: wasm (default), cpu, tensorflow (needs @tensorflow/tfjs-node)')
    .showHelpAfterError();
  p.hook('preAction', async () => {
    await initBackend({ backend: p.opts().backend as BackendName | undefined });
  });

  p.command('info')
    .description('architecture, parameters, dtype, context length and tokenizer of a model folder')
    .argument('<dir>', 'Hugging Face model folder (config.json + weights)')
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      const info = await modelInfo(dir);
      print(!!o.json, info, () => formatInfo(info));
    });

  p.command('score')
    .description('per-token log-probabilities of a text under a causal LM, and the total')
    .argument('<dir>', 'causal LM folder (GPT-2, Llama)')
    .requiredOption('--text <text>', 'the text to score')
    .option('--no-bos', 'do not prepend the BOS token (the first token is then unscored)')
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { text: string; bos: boolean; json?: boolean }) => {
      const r = await scoreText(dir, o.text, { bos: o.bos });
      print(!!o.json, r, () => formatScore(r));
    });

  p.command('fill-mask')
    .description('the most probable tokens for each mask token of a text, under a masked LM')
    .argument('<dir>', 'masked LM folder (BERT, RoBERTa)')
    .requiredOption('--text <text>', 'text with the tokenizer\'s mask token, e.g. "Paris is the [MASK] of France."')
    .option('--top-k <k>', 'candidates per mask', positiveInt, 5)
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { text: string; topK: number; json?: boolean }) => {
      const r = await fillMask(dir, o.text, o.topK);
      print(!!o.json, r, () => formatFillMask(r));
    });

  p.command('demo', { isDefault: true })
    .description('run info, score and fill-mask on tiny random models written to .cache/ (the default command)')
    .action(async () => {
      const root = join(process.cwd(), '.cache');
      const { gpt2, bert } = await ensureTinyModels(root);
      const out = (s: string) => process.stdout.write(s + '\n');
      out('makemost demo: tiny RANDOMLY INITIALISED models (no trained default model ships yet), so the');
      out('numbers below show the machinery working, not language knowledge. Point the commands at a real');
      out('Hugging Face folder for real results: makemost score <dir> --text "..."\n');
      out(`$ makemost info ${gpt2}`);
      out(formatInfo(await modelInfo(gpt2)) + '\n');
      out(`$ makemost score ${gpt2} --text "Hello, world!"`);
      out(formatScore(await scoreText(gpt2, 'Hello, world!', { bos: true })) + '\n');
      out(`$ makemost fill-mask ${bert} --text "Paris is the [MASK] of France." --top-k 3`);
      out(formatFillMask(await fillMask(bert, 'Paris is the [MASK] of France.', 3)));
    });
  return p;
}

/** Run with process.argv; library errors print cleanly and set exit code 1. */
export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    if (e instanceof MakemostError) {
      process.stderr.write(`makemost: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}
