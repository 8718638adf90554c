/**
 * `makemost degeneracy` and `makemost train-attribute-classifier`: the thesis's decoding analyses on the
 * command line. Registered on the program by main.ts.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError } from '../errors.js';
import { formatDegeneracyTable } from '../generation/analysis.js';
import { attributeFromSpec, type AttributeSpec } from '../generation/conditional/attributes.js';
import { trainAttributeClassifier } from '../generation/conditional/data.js';
import { loadClassifier, saveClassifier } from '../generation/conditional/files.js';
import { eosIds, resolveGenerationConfig } from '../generation/config.js';
import { degeneracyReport } from '../generation/degeneracy.js';
import { positiveInt } from './args.js';
import { loadCausal, type Loaded } from './generate.js';

/** `non-empty`, `min-length:L`, `length:L`, `no-repeat-ngram:n` → an attribute spec. */
export function parseAttribute(s: string): AttributeSpec {
  const [kind, arg] = s.split(':');
  const n = Number(arg);
  if (kind === 'non-empty' && arg === undefined) return { kind: 'non-empty' };
  if (kind === 'min-length' && Number.isInteger(n) && n >= 0) return { kind: 'min-length', length: n };
  if (kind === 'length' && Number.isInteger(n) && n >= 0) return { kind: 'length', length: n };
  if (kind === 'no-repeat-ngram' && Number.isInteger(n) && n >= 1) return { kind: 'no-repeat-ngram', n };
  throw new InvalidArgumentError('expected non-empty, min-length:L, length:L or no-repeat-ngram:n');
}

function readPrompts(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the prompts file ${path}: ${(e as Error).message}`);
  }
  const prompts = text.split('\n').map((l) => l.trimEnd()).filter((l) => l.length > 0);
  if (prompts.length === 0) throw new ConfigError(`the prompts file ${path} has no non-empty line`, 'write one prompt per line');
  return prompts;
}

function encodePrompts(l: Loaded, prompts: string[]): number[][] {
  return prompts.map((p) => {
    const ids = l.tokenizer.encode(p).ids;
    if (ids.length === 0 && l.tokenizer.bosTokenId !== undefined) return [l.tokenizer.bosTokenId];
    return ids;
  });
}

function eosOf(l: Loaded): number[] {
  const eos = eosIds(resolveGenerationConfig({}, { modelConfig: l.model.config, generationConfigJson: l.generationConfig }));
  if (eos.length === 0) throw new ConfigError('this model has no EOS token id', 'set eos_token_id in config.json or generation_config.json');
  return eos;
}


/** Add the commands to the program. */
export function registerThesisCommands(p: Command, signal: () => AbortSignal, write: (s: string) => void): void {
  p.command('train-attribute-classifier')
    .description('train an attribute classifier on the frozen LM\'s own samples (for conditional beam search: generate --classifier)')
    .argument('<dir>', 'causal LM folder')
    .requiredOption('--attribute <spec>', 'non-empty | min-length:L | length:L | no-repeat-ngram:n', parseAttribute)
    .requiredOption('--prompts <file>', 'one prompt per line')
    .option('--samples <n>', 'samples per prompt', positiveInt, 64)
    .option('--max-new-tokens <n>', 'sample length limit', positiveInt, 20)
    .option('--epochs <n>', 'passes over the prefixes', positiveInt, 10)
    .option('--seed <n>', 'seed', (v) => Number(v), 0)
    .option('--out <dir>', 'where to write attribute_classifier.{json,safetensors} (default: the model folder)')
    .action(async (dir: string, o: { attribute: AttributeSpec; prompts: string; samples: number; maxNewTokens: number; epochs: number; seed: number; out?: string }) => {
      const l = await loadCausal(dir);
      try {
        const attribute = attributeFromSpec(o.attribute)!;
        const prompts = encodePrompts(l, readPrompts(o.prompts));
        const s = signal();
        const { classifier, losses, examples } = await trainAttributeClassifier(l.model, prompts, attribute, {
          samplesPerPrompt: o.samples, maxNewTokens: o.maxNewTokens, eosTokenIds: eosOf(l), seed: o.seed, epochs: o.epochs, signal: s,
          onSamples: (done, total) => process.stderr.write(`\rsampling ${done}/${total}`),
          onProgress: (q) => process.stderr.write(`\repoch ${q.epoch + 1}/${o.epochs} step ${q.step + 1}/${q.steps} loss ${q.loss.toFixed(4)}   `),
        });
        process.stderr.write('\n');
        const out = o.out ?? dir;
        await saveClassifier(classifier, out);
        const rate = examples.outputLabels.filter(Boolean).length / examples.outputLabels.length;
        write(`attribute ${JSON.stringify(o.attribute)} holds for ${(100 * rate).toFixed(1)}% of ${examples.outputLabels.length} samples; loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}\nwrote ${out}/attribute_classifier.json and .safetensors\n`);
        classifier.dispose();
      } finally {
        l.model.dispose();
      }
    });

  p.command('degeneracy')
    .description('empty outputs, repetition, length and log-probability of greedy, beam, sampling, exact mode and conditional beam search over a prompts file')
    .argument('<dir>', 'causal LM folder')
    .requiredOption('--prompts <file>', 'one prompt per line')
    .option('--max-new-tokens <n>', 'length limit', positiveInt, 20)
    .option('--beams <list>', 'beam widths, comma-separated', (v) => v.split(',').map(positiveInt), [2, 4, 8])
    .option('--samples <n>', 'ancestral samples per prompt (0 to skip)', (v) => Number(v), 4)
    .option('--exact-ms <n>', 'exact mode search per prompt with this time budget (ms)', positiveInt)
    .option('--classifier <dir>', 'conditional beam search with the attribute classifier in this folder')
    .option('--weight <λ>', 'classifier weight', (v) => Number(v), 1)
    .option('--ngram <n>', 'n of the repeated-n-gram rate', positiveInt, 4)
    .option('--seed <n>', 'sampling seed', (v) => Number(v), 0)
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { prompts: string; maxNewTokens: number; beams: number[]; samples: number; exactMs?: number; classifier?: string; weight: number; ngram: number; seed: number; json?: boolean }) => {
      const l = await loadCausal(dir);
      const classifier = o.classifier ? loadClassifier(o.classifier) : undefined;
      try {
        const rows = await degeneracyReport(l.model, encodePrompts(l, readPrompts(o.prompts)), {
          maxNewTokens: o.maxNewTokens, eosTokenIds: eosOf(l), beams: o.beams, samples: o.samples, seed: o.seed, n: o.ngram,
          exact: o.exactMs ? { ms: o.exactMs } : undefined,
          conditional: classifier ? { classifier, weight: o.weight } : undefined,
          signal: signal(), onStrategy: (name) => process.stderr.write(`done: ${name}\n`),
        });
        if (o.json) write(JSON.stringify(rows.map((r) => ({ name: r.name, ...r.stats, ...(r.proven === undefined ? {} : { proven: r.proven }), outputs: r.outputs.map((x) => ({ ...x, text: l.tokenizer.decode(x.tokens, { skipSpecialTokens: true }) })) })), null, 2) + '\n');
        else write(formatDegeneracyTable(rows) + '\n');
      } finally {
        classifier?.dispose();
        l.model.dispose();
      }
    });
}
