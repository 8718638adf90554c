/**
 * The model card (README.md) of a trained default model: data with licenses, size, steps, tokens seen,
 * losses and perplexities against a unigram baseline, wall time, and the commands that reproduce it.
 */
import { writeFileSync } from 'node:fs';

/** What a training run measured, as the card reports it. */
export interface CardFacts {
  params: number;
  config: { n_layer: number; n_embd: number; n_head: number; n_positions: number; vocab_size: number };
  manifest: { packages: { package: string; version: string; license: string; documents: number; text_bytes: number }[]; files: Record<string, { documents: number; bytes: number; sha256: string }> };
  trainTokens: number;
  valTokens: number;
  steps: number;
  maxSteps: number;
  batchSize: number;
  blockSize: number;
  lr: number;
  stoppedBy: string;
  tokensSeen: number;
  trainLossLogged: number;
  trainEval: number;
  valLoss: number;
  unigramValNll: number;
  heldoutModelPpl: number;
  heldoutUnigramPpl: number;
  heldoutTokens: number;
  heldoutBytes: number;
  trainSeconds: number;
  totalSeconds: number;
  backend: string;
  command: string;
  seed: number;
}

/** The factor by which the held-out perplexity must beat the unigram's in test/defaults.test.ts. */
export function heldoutMargin(f: Pick<CardFacts, 'heldoutModelPpl' | 'heldoutUnigramPpl'>): number {
  // Half the measured advantage, one decimal, floored: backends differ only in rounding, so this never flakes.
  return Math.max(1, Math.floor((f.heldoutUnigramPpl / f.heldoutModelPpl / 2) * 10) / 10);
}

/** A number with `d` decimals, as the cards print it. */
export const n = (x: number, d = 2): string => x.toFixed(d);
/** A rounded count with thousands separators. */
export const int = (x: number): string => Math.round(x).toLocaleString('en-US');

/** The card's "## Data" section (corpus, licenses, splits, held-out text), shared by the default models' cards. */
export function dataSection(f: Pick<CardFacts, 'manifest' | 'heldoutBytes'>): string {
  const pk = f.manifest.packages.map((p) => `| \`${p.package}\` | ${p.version} | ${p.license} | ${int(p.documents)} | ${int(p.text_bytes)} |`).join('\n');
  return `## Data
English text extracted from Debian packages by \`scripts/data/build_corpus.ts\` (fortune files with the \`%\` separators removed; WordNet 3.0 glosses with their example sentences, as \`word, synonym: gloss\`). Duplicates are dropped; each document's split comes from the SHA-256 of its text (2 % test, 2 % validation). The corpus is not shipped; the script rebuilds it byte-identically (it checks SHA-256 itself).

| package | version | license (debian/copyright) | documents | text bytes |
|---|---|---|---|---|
${pk}

Splits: ${Object.entries(f.manifest.files).map(([k, v]) => `${k} ${int(v.documents)} documents (sha256 \`${v.sha256.slice(0, 16)}…\`)`).join('; ')}.

\`heldout.txt\` (${int(f.heldoutBytes)} bytes) holds WordNet glosses from the test split, one per line. WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Its license permits use, copying, modification and distribution for any purpose without fee, provided the copyright notice and the license's statements appear on all copies; THE DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. The name of Princeton University may not be used in advertising or publicity pertaining to distribution. The weights were also trained on the fortune files of the \`fortunes\` packages (BSD-licensed package; the texts are quotations collected over decades, shipped by Debian in main).

`;
}

/** Writes the card to `path`. */
/** The card's "Reproduce" section: rebuild the corpus and tokenizer, then run `command`. */
export function reproduceSection(command: string): string {
  return `## Reproduce
\`\`\`sh
npx tsc -p tsconfig.json
node dist/scripts/data/build_corpus.js          # .cache/corpus (apt-get download + dpkg-deb -x)
node dist/scripts/train_tokenizer.js            # .cache/tokenizer
${command}
\`\`\`
Steps are sized from a timing probe to fit the time budget, so a faster or slower machine trains for more or fewer steps.
`;
}

export function writeModelCard(path: string, f: CardFacts): void {
  const margin = heldoutMargin(f);
  const text = `---
license: other
language: en
library_name: makemost
pipeline_tag: text-generation
---
# makemost-gpt-tiny

A ${(f.params / 1e6).toFixed(2)} M-parameter GPT-2 (${f.config.n_layer} layers, ${f.config.n_embd} wide, ${f.config.n_head} heads, context ${f.config.n_positions}, vocabulary ${f.config.vocab_size}, tied input/output embeddings) trained from scratch by makemost's own Trainer, on one CPU core, in ${n(f.trainSeconds / 60, 1)} minutes. It is makemost's default model, so that \`makemost generate\` works with no download. It is a toy: it writes dictionary-gloss- and fortune-shaped English, not facts.

${dataSection(f)}## Tokenizer
Byte-level BPE (GPT-2's pre-tokenizer regex and byte alphabet), ${f.config.vocab_size} entries: 256 bytes, ${f.config.vocab_size - 257} merges learnt on the training split by \`scripts/train_tokenizer.ts\` (\`src/tokenizers/bpe_trainer.ts\`; most frequent pair first, ties by string order), and \`<|endoftext|>\` (id ${f.config.vocab_size - 1}), which separates documents and serves as BOS, EOS and padding.

## Training
Causal LM on packed blocks of ${f.blockSize} tokens with \`<|endoftext|>\` after each document; AdamW (lr ${f.lr}, betas 0.9/0.99, weight decay 0.1 on matrices, gradient clipping at 1), linear warm-up then cosine decay, batch ${f.batchSize} × ${f.blockSize} tokens, no dropout, seed ${f.seed}, backend ${f.backend}.

| | |
|---|---|
| parameters | ${int(f.params)} |
| training tokens (one epoch, packed) | ${int(f.trainTokens)} |
| steps | ${int(f.steps)} of ${int(f.maxSteps)} planned (stopped by ${f.stoppedBy}) |
| tokens seen | ${int(f.tokensSeen)} (${n(f.tokensSeen / f.trainTokens)} epochs) |
| final train loss (last logged window) | ${n(f.trainLossLogged, 4)} |
| train loss / perplexity (first ${int(f.valTokens)}-token slice of train, after training) | ${n(f.trainEval, 4)} / ${n(Math.exp(f.trainEval))} |
| **validation loss / perplexity** (${int(f.valTokens)} tokens) | **${n(f.valLoss, 4)} / ${n(Math.exp(f.valLoss))}** |
| unigram baseline validation perplexity (add-one smoothed train counts, same tokens) | ${n(Math.exp(f.unigramValNll))} |
| held-out \`heldout.txt\` perplexity (windows of ${f.blockSize}, stride ${f.blockSize / 2}; ${int(f.heldoutTokens)} tokens) | ${n(f.heldoutModelPpl)} |
| unigram baseline on \`heldout.txt\` | ${n(f.heldoutUnigramPpl)} |
| training wall time | ${n(f.trainSeconds / 60, 1)} min (whole script ${n(f.totalSeconds / 60, 1)} min) |

\`test/defaults.test.ts\` checks that the shipped weights' held-out perplexity is at least **${margin}×** lower than the unigram baseline's (\`unigram_counts.json\` holds the counts), and that the tokenizer round-trips \`heldout.txt\`.

${reproduceSection(f.command)}
## Use
\`\`\`sh
npx makemost generate models/makemost-gpt-tiny --prompt "The"
\`\`\`
\`generation_config.json\` sets \`repetition_penalty\` 1.3 and \`no_repeat_ngram_size\` 3: without them greedy decoding of a model this small loops on one token.
`;
  writeFileSync(path, text);
}
