/**
 * The `makemost` command line. Each command is a thin shell over the library: parse options, call,
 * print a table (or JSON with --json). Errors from the library print their message and HINT, exit 1.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { initBackend, type BackendName } from '../backend/index.js';
import { ConfigError, MakemostError } from '../errors.js';
import { GENERATION_KEYS } from '../generation/index.js';
import { flagOf, formatMode, generationOptions, loadCausal, runGenerate, runMode } from './generate.js';
import { addTrainingCommands } from './finetune.js';
import { registerHsoCommands } from './hso.js';
import { registerThesisCommands } from './thesis.js';
import { loadClassifier as loadAttributeClassifier } from '../generation/conditional/files.js';
import { formatInfo, modelInfo } from './info.js';
import { fillMask, formatFillMask, formatScore, scoreText } from './score.js';
import { defaultModel } from './defaults.js';
import { ensureTinyModels } from './tiny.js';
import { nonNegativeInt, positiveInt } from './args.js';


/** An AbortSignal that fires on Ctrl-C, so long calls stop within a step and free their tensors. */
function interruptSignal(): AbortSignal {
  const c = new AbortController();
  process.once('SIGINT', () => c.abort());
  return c.signal;
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

  const gen = p.command('generate')
    .description('continue a prompt (streams when there is one sequence); every HF generation option is a flag, e.g. --do-sample --top-p 0.9 --num-beams 4')
    .argument('[dir]', 'causal LM folder (GPT-2, Llama); default: the shipped models/makemost-gpt-tiny')
    .option('--prompt <text>', 'the text to continue ("" starts from BOS)', 'The')
    .option('--json', 'print JSON (sequences, token ids, scores, the options used)')
    .option('--classifier <dir>', 'conditional beam search (ACBS) with the attribute classifier in this folder (see train-attribute-classifier)')
    .option('--classifier-weight <λ>', 'weight λ of log q(attribute | prefix) in the beam score', (v) => Number(v), 1);
  for (const key of GENERATION_KEYS) {
    if (key === 'conditional') continue;
    gen.option(`--${flagOf(key)} [value]`, `HF generation option ${key}`);
  }
  gen.action(async (dirArg: string | undefined, o: Record<string, unknown>) => {
    const dir = dirArg ?? defaultModel('makemost-gpt-tiny');
    if (!dir) throw new ConfigError('no model folder given and no default model shipped in models/', 'pass a Hugging Face model folder: makemost generate <dir> --prompt "..."');
    const loaded = await loadCausal(dir);
    try {
      const options = generationOptions(o);
      const classifier = typeof o.classifier === 'string' ? loadAttributeClassifier(o.classifier) : undefined;
      if (classifier) options.conditional = { classifier, weight: o.classifierWeight };
      try {
        await runGenerate(loaded, String(o.prompt), options, { write: (s) => process.stdout.write(s), json: !!o.json, signal: interruptSignal() });
      } finally {
        classifier?.dispose();
      }
    } finally {
      loaded.model.dispose();
    }
  });

  p.command('mode')
    .description("the model's exact mode (most probable complete sequence) by branch and bound, beside greedy's output")
    .argument('<dir>', 'causal LM folder')
    .requiredOption('--prompt <text>', 'the conditioning text ("" starts from BOS)')
    .option('--max-new-tokens <n>', 'longest sequence searched (EOS included)', positiveInt, 20)
    .option('--min-new-tokens <n>', 'conditional mode: at least n tokens before EOS', nonNegativeInt)
    .option('--exact-length <n>', 'length-conditional mode: exactly n tokens before EOS', nonNegativeInt)
    .option('--budget-nodes <n>', 'stop after expanding n prefixes (result then not proven optimal)', positiveInt)
    .option('--budget-ms <n>', 'stop after n milliseconds', positiveInt)
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { prompt: string; maxNewTokens: number; minNewTokens?: number; exactLength?: number; budgetNodes?: number; budgetMs?: number; json?: boolean }) => {
      const loaded = await loadCausal(dir);
      try {
        const r = await runMode(loaded, o.prompt, o, interruptSignal());
        print(!!o.json, r, () => formatMode(r));
      } finally {
        loaded.model.dispose();
      }
    });

  addTrainingCommands(p, interruptSignal);
  registerThesisCommands(p, interruptSignal, (s) => process.stdout.write(s));
  registerHsoCommands(p);

  p.command('main', { isDefault: true, hidden: true })
    .description('the default command: the shipped model continues prompts by greedy, beam and nucleus decoding')
    .action(async () => {
      const trained = defaultModel('makemost-gpt-tiny');
      if (trained) return mainJob(trained);
      return demo();
    });

  p.command('demo')
    .description('run info, score, fill-mask, generate and mode on tiny random models written to .cache/')
    .action(demo);
  return p;
}

/** The machinery on tiny random models (no language knowledge): info, score, fill-mask, generate, mode. */
async function demo(): Promise<void> {
  const root = join(process.cwd(), '.cache');
  const { gpt2, bert } = await ensureTinyModels(root);
  const out = (s: string) => process.stdout.write(s + '\n');
  out('makemost demo: tiny RANDOMLY INITIALISED models, so the');
  out('numbers below show the machinery working, not language knowledge. Point the commands at a real');
  out('Hugging Face folder for real results: makemost score <dir> --text "..."\n');
  out(`$ makemost info ${gpt2}`);
  out(formatInfo(await modelInfo(gpt2)) + '\n');
  out(`$ makemost score ${gpt2} --text "Hello, world!"`);
  out(formatScore(await scoreText(gpt2, 'Hello, world!', { bos: true })) + '\n');
  out(`$ makemost fill-mask ${bert} --text "Paris is the [MASK] of France." --top-k 3`);
  out(formatFillMask(await fillMask(bert, 'Paris is the [MASK] of France.', 3)) + '\n');
  const loaded = await loadCausal(gpt2);
  try {
    for (const [name, opts] of [['greedy', {}], ['beam search, 4 beams', { num_beams: 4 }], ['nucleus sampling, top_p 0.9', { do_sample: true, top_p: 0.9, top_k: 0, seed: 1 }]] as const) {
      out(`$ makemost generate ${gpt2} --prompt "Once upon a time" --max-new-tokens 16  # ${name}`);
      await runGenerate(loaded, 'Once upon a time', { max_new_tokens: 16, ...opts }, { write: (s) => process.stdout.write(s), json: false });
    }
    out(`\n$ makemost mode ${gpt2} --prompt "Once upon a time" --max-new-tokens 4`);
    out(formatMode(await runMode(loaded, 'Once upon a time', { maxNewTokens: 4, budgetMs: 5000 })));
  } finally {
    loaded.model.dispose();
  }
}

/** The main job: the shipped default model continues a prompt by greedy, beam and nucleus decoding side by side. */
async function mainJob(dir: string): Promise<void> {
  const out = (s: string) => process.stdout.write(s + '\n');
  const info = await modelInfo(dir);
  out(`makemost: default model ${dir}`);
  out(`  ${info.architecture}, ${(info.parameters / 1e6).toFixed(2)} M parameters, context ${info.context_length} tokens — trained by this project (see its README.md)\n`);
  const loaded = await loadCausal(dir);
  try {
    for (const prompt of ['The Lord is', 'A man who']) {
      for (const [name, opts] of [['greedy', {}], ['beam search, 4 beams', { num_beams: 4, no_repeat_ngram_size: 3 }], ['nucleus sampling, top_p 0.9', { do_sample: true, top_p: 0.9, top_k: 0, seed: 1 }]] as const) {
        process.stdout.write(`${name.padEnd(28)}| `);
        await runGenerate(loaded, prompt, { max_new_tokens: 24, ...opts }, { write: (s) => process.stdout.write(s.replace(/\t+/g, ' ').replace(/\n(?!$)/g, ' ')), json: false });
      }
      out('');
    }
    out('More: makemost generate [dir] --prompt "..." [--do-sample --top-p 0.9 | --num-beams 4], makemost mode, makemost score, makemost --help');
  } finally {
    loaded.model.dispose();
  }
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
