/**
 * The model card (README.md) of the default masked LM `models/makemost-bert-tiny`: the same data section
 * as the decoder's card (scripts/model_card.ts), then its tokenizer, training run, masked-token
 * perplexities against a unigram baseline, and the commands that reproduce and use it.
 */
import { writeFileSync } from 'node:fs';
import { dataSection, int, n, reproduceSection, type CardFacts } from './model_card.js';

/** What a masked-LM training run measured, as the card reports it. */
export interface MlmCardFacts {
  params: number;
  config: { num_hidden_layers: number; hidden_size: number; num_attention_heads: number; intermediate_size: number; max_position_embeddings: number; vocab_size: number; pad_token_id: number };
  manifest: CardFacts['manifest'];
  maskTokenId: number;
  trainTokens: number;
  trainDocuments: number;
  steps: number;
  maxSteps: number;
  batchSize: number;
  blockSize: number;
  lr: number;
  mlmProbability: number;
  stoppedBy: string;
  tokensSeen: number;
  trainLossLogged: number;
  /** Masked-LM loss on a train slice the size of the validation set, after training. */
  trainEval: number;
  valLoss: number;
  /** Masked positions the validation loss is over. */
  valMasked: number;
  unigramValNll: number;
  /** exp(mean NLL) over the fixed mask set of heldout.txt. */
  heldoutModelPpl: number;
  heldoutUnigramPpl: number;
  /** Scored (masked) positions in heldout.txt: every non-special token once. */
  heldoutTokens: number;
  heldoutLines: number;
  heldoutBytes: number;
  heldoutMaskRule: string;
  trainSeconds: number;
  totalSeconds: number;
  backend: string;
  command: string;
  seed: number;
  /** `makemost fill-mask` on an example, as printed after training. */
  fillMask: { text: string; output: string };
}

/** Writes the card to `path`; `margin` is the factor test/defaults_mlm.test.ts holds the weights to. */
export function writeMlmModelCard(path: string, f: MlmCardFacts, margin: number): void {
  const c = f.config;
  const text = `---
license: other
language: en
library_name: makemost
pipeline_tag: fill-mask
---
# makemost-bert-tiny

A ${(f.params / 1e6).toFixed(2)} M-parameter RoBERTa masked language model (${c.num_hidden_layers} layers, ${c.hidden_size} wide, ${c.num_attention_heads} heads, feed-forward ${c.intermediate_size}, up to ${f.blockSize} tokens, vocabulary ${c.vocab_size}, decoder tied to the input embeddings) trained from scratch by makemost's own Trainer, on CPU, in ${n(f.trainSeconds / 60, 1)} minutes. It is makemost's default masked LM, so that \`makemost fill-mask\` and the MLM code paths work with no download. It is a toy: it fills gloss- and fortune-shaped English with frequent words, not facts.

${dataSection(f)}## Tokenizer
The byte-level BPE of \`scripts/train_tokenizer.ts\` (the one \`makemost-gpt-tiny\` uses) rearranged by \`scripts/mlm_tokenizer.ts\` into roberta-base's layout: \`<s>\` 0, \`<pad>\` ${c.pad_token_id}, \`</s>\` 2, \`<unk>\` 3, the 256 bytes and ${c.vocab_size - 261} merges from 4, \`<mask>\` ${f.maskTokenId} (it absorbs the space before it, as RoBERTa's). \`<|endoftext|>\` is dropped: \`</s>\` ends each document. The post-processor is RoBERTa's (\`<s> text </s>\`), and \`tokenizer_config.json\` names \`RobertaTokenizer\`. \`pad_token_id\` is ${c.pad_token_id} because RoBERTa numbers positions from padding_idx + 1; hence \`max_position_embeddings\` ${c.max_position_embeddings} = ${f.blockSize} + ${c.pad_token_id} + 1 (514 for 512 in roberta-base).

## Training
Masked LM as HF's \`run_mlm.py --line_by_line\` does it: each of the ${int(f.trainDocuments)} training documents is one example, \`<s> text </s>\` truncated to ${f.blockSize} tokens, in batches of ${f.batchSize} documents of similar length (HF's \`group_by_length\`); in each batch ${n(f.mlmProbability * 100, 0)} % of the non-special tokens are chosen afresh, of which 80 % become \`<mask>\`, 10 % a random token and 10 % stay (\`DataCollatorForLanguageModeling\`, here \`src/training/data_batches.ts\`); cross-entropy at the chosen positions. (Packing documents into full ${f.blockSize}-token blocks, \`run_mlm.py\`'s default, left this model at the unigram level on masked held-out words after 9 minutes; one document per example learnt in 3.) The decoder bias (\`lm_head.bias\`) starts at the add-one-smoothed unigram log-probabilities of the training tokens, so the untrained model already scores the unigram baseline and the training steps go to context; the other weights start as HF's \`_init_weights\` (normal, std 0.02). AdamW (lr ${f.lr}, betas 0.9/0.98, epsilon 1e-6, weight decay 0.01 on matrices, gradient clipping at 1), linear warm-up then cosine decay, no dropout, seed ${f.seed}, backend ${f.backend}.

| | |
|---|---|
| parameters | ${int(f.params)} |
| training tokens (one epoch, with \`<s>\` and \`</s>\`) | ${int(f.trainTokens)} in ${int(f.trainDocuments)} documents |
| steps | ${int(f.steps)} of ${int(f.maxSteps)} planned (stopped by ${f.stoppedBy}) |
| tokens seen | ${int(f.tokensSeen)} (${n(f.tokensSeen / f.trainTokens)} epochs; ${int(f.tokensSeen / Math.max(1, f.steps))} per batch on average) |
| final train loss (last logged window, masked tokens) | ${n(f.trainLossLogged, 4)} |
| train masked-LM loss / perplexity (every k-th training document, as many as validation has, after training) | ${n(f.trainEval, 4)} / ${n(Math.exp(f.trainEval))} |
| **validation masked-LM loss / perplexity** (${int(f.valMasked)} masked tokens, 80/10/10 masks from seed ${f.seed}) | **${n(f.valLoss, 4)} / ${n(Math.exp(f.valLoss))}** |
| unigram baseline validation perplexity (add-one smoothed train counts, same tokens) | ${n(Math.exp(f.unigramValNll))} |
| **held-out \`heldout.txt\` masked-token perplexity** (${int(f.heldoutTokens)} tokens in ${int(f.heldoutLines)} lines, each masked once by the fixed rule below) | **${n(f.heldoutModelPpl)}** |
| unigram baseline on the same masked tokens | ${n(f.heldoutUnigramPpl)} |
| training wall time | ${n(f.trainSeconds / 60, 1)} min (whole script ${n(f.totalSeconds / 60, 1)} min) |

The validation loss is HF's: it also scores the chosen tokens that stayed visible (10 %), which a model learns to copy early, so it falls below the unigram baseline before the model reads context. The held-out number scores only tokens replaced by \`<mask>\`. Its mask sets are fixed, so it can be recomputed from the shipped files: ${f.heldoutMaskRule}. The unigram baseline is p(t) = (count(t) + 1) / (N + V) with the counts of non-special training tokens in \`unigram_counts.json\`.

\`test/defaults_mlm.test.ts\` checks that the shipped weights' held-out masked-token perplexity is at least **${margin}×** lower than the unigram baseline's (recomputed there from the logits), that the tokenizer round-trips \`heldout.txt\`, and that a PyTorch re-implementation of HF's \`RobertaForMaskedLM\` (\`test/support/reference.py\`) loads the weights strictly by name and gives the same logits.

${reproduceSection(f.command)}
## Use
\`\`\`sh
npx makemost fill-mask models/makemost-bert-tiny --text ${JSON.stringify(f.fillMask.text)}
\`\`\`
printed, after training:
\`\`\`
${f.fillMask.output}
\`\`\`
`;
  writeFileSync(path, text);
}
