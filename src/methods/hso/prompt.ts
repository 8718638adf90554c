/**
 * Prompt-based few-shot classification prompts (the LM-BFF / "calibrate before use" setting of HSO's
 * few-shot experiments, methods.md §4.4): demonstrations rendered with a template and a verbaliser,
 * tokenized piece by piece so that demonstrations and test inputs split into tokens the same way.
 *
 * Tokenization: the template is cut at `{label}`; whitespace just before `{label}` belongs to the label
 * (" positive" is one GPT-2 token, "positive" after a separately encoded trailing space is not). Each
 * demonstration is encoded as [prefix][label][suffix + separator], the test input as [prefix], and each
 * class's continuation as [label] — so a test input's label tokens are exactly those its demonstrations
 * show.
 */
import { ConfigError } from '../../errors.js';

/** The little of a tokenizer this needs (PreTrainedTokenizer fits). */
export interface PromptTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): { ids: number[] };
  readonly bosTokenId?: number;
}

/** How examples become text. */
export interface FewShotFormat {
  /** e.g. `Review: {text} Sentiment: {label}`: exactly one `{label}`, any number of `{text}`. */
  template: string;
  /** The verbaliser: the word written for each class, in class order. */
  labels: string[];
  /** After each demonstration (default "\n"). */
  separator?: string;
  /** Start the prompt with the tokenizer's BOS token when it has one (default true). */
  bos?: boolean;
}

/** A text and its class index. */
export interface LabelledText {
  text: string;
  label: number;
}

/** Token ids of a rendered few-shot task. */
export interface EncodedFewShot {
  /** BOS (if any) and every demonstration. */
  prompt: number[];
  /** Per prompt token: whether it belongs to a label word. */
  labelMask: boolean[];
  /** Per class: the ids of its label continuation. */
  labelIds: number[][];
  /** A test input's ids (the template up to the label). */
  query: (text: string) => number[];
}

/** The template split at `{label}`, with the whitespace before it moved into the label. */
export function splitTemplate(template: string): { prefix: string; space: string; suffix: string } {
  const parts = template.split('{label}');
  if (parts.length !== 2) throw new ConfigError(`the template must contain {label} exactly once, found ${parts.length - 1} in ${JSON.stringify(template)}`, 'write it like "Review: {text} Sentiment: {label}"');
  const space = /\s*$/.exec(parts[0])![0];
  return { prefix: parts[0].slice(0, parts[0].length - space.length), space, suffix: parts[1] };
}

/** Encode demonstrations, label continuations and the query builder for a format. */
export function encodeFewShot(tok: PromptTokenizer, format: FewShotFormat, demos: LabelledText[]): EncodedFewShot {
  const { labels } = format;
  const separator = format.separator ?? '\n';
  if (labels.length < 2) throw new ConfigError(`few-shot classification needs at least 2 labels, got ${labels.length}`, 'pass the verbaliser words, e.g. positive,negative');
  if (new Set(labels).size !== labels.length) throw new ConfigError(`the label words must differ, got ${labels.join(', ')}`);
  const { prefix, space, suffix } = splitTemplate(format.template);
  const enc = (s: string) => (s.length ? tok.encode(s, { addSpecialTokens: false }).ids : []);
  const fill = (s: string, text: string) => s.split('{text}').join(text);
  const labelIds = labels.map((l) => enc(space + l));
  labelIds.forEach((ids, i) => {
    if (ids.length === 0) throw new ConfigError(`label ${JSON.stringify(labels[i])} encodes to no tokens`, 'use non-empty label words');
  });
  if (new Set(labelIds.map((ids) => ids.join(','))).size !== labels.length) throw new ConfigError(`two labels encode to the same tokens (${labels.join(', ')})`, 'pick label words the tokenizer tells apart');
  const prompt: number[] = [];
  const labelMask: boolean[] = [];
  const push = (ids: number[], isLabel: boolean) => {
    prompt.push(...ids);
    labelMask.push(...ids.map(() => isLabel));
  };
  if ((format.bos ?? true) && tok.bosTokenId !== undefined) push([tok.bosTokenId], false);
  demos.forEach((d, i) => {
    if (!Number.isInteger(d.label) || d.label < 0 || d.label >= labels.length) throw new ConfigError(`demonstration ${i} has label ${d.label}, expected a class index in [0, ${labels.length})`);
    push(enc(fill(prefix, d.text)), false);
    push(labelIds[d.label], true);
    push(enc(fill(suffix, d.text) + separator), false);
  });
  return { prompt, labelMask, labelIds, query: (text: string) => enc(fill(prefix, text)) };
}
