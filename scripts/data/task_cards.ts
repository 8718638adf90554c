/**
 * Dataset cards (README.md, Hugging Face dataset-card layout) of the task sets build_tasks.ts writes:
 * source package, build rules, counts per split and label, the rebuild command and how makemost uses them.
 */
import type { Split } from './corpus.js';
import { labelCounts, SPLITS, type DefinitionRecord, type SupersenseRecord } from './tasks.js';

/** The package a task set comes from. */
export interface SourceInfo {
  package: string;
  version: string;
  deb: string;
  deb_sha256: string;
  license: string;
  copyright_file: string;
  synsets: number;
}

const int = (x: number) => x.toLocaleString('en-US');
const bytes = (recs: readonly object[]) => recs.reduce((n, r) => n + Buffer.byteLength(JSON.stringify(r)) + 1, 0);

function sourceSection(src: SourceInfo): string {
  return `| package | version | license | synsets read | .deb SHA-256 |
|---|---|---|---|---|
| \`${src.package}\` | ${src.version} | ${src.license} | ${int(src.synsets)} | \`${src.deb_sha256.slice(0, 16)}…\` |`;
}

const REBUILD = `\`\`\`sh
npx tsc -p tsconfig.json
node dist/scripts/data/build_corpus.js   # downloads the .debs into .cache/corpus/debs (apt-get download)
node dist/scripts/data/build_tasks.js    # unpacks wordnet-base twice, writes datasets/, checks the bytes
\`\`\`
The build fails if two unpackings give different bytes, or if a file's SHA-256 differs from \`manifest.json\`.`;

const SPLIT_RULE = 'Each record\'s split is the split of its synset\'s document in the default models\' corpus (`scripts/data/corpus.ts` `splitOf`: the first 32 bits of SHA-256 of the document `words: gloss`, below 2 % test, below 4 % validation, else train), so the shipped language models never trained on a held-out gloss. The held-out splits are therefore about 2 % of the eligible synsets each.';

const LICENSE_NOTE = 'WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Use, copying, modification and distribution are permitted without fee provided the notice and the license\'s statements appear on all copies; see `LICENSE` for the full text, including the disclaimer of warranties.';

/** The card of makemost-supersense. */
export function supersenseCard(src: SourceInfo, labels: readonly string[], d: Record<Split, SupersenseRecord[]>, s: { labels: number; maxWords: number; caps: Record<Split, number> }): string {
  const per = Object.fromEntries(SPLITS.map((sp) => [sp, labelCounts(d[sp], labels)]));
  const rows = labels.map((l, i) => `| ${i} | \`${l}\` | ${SPLITS.map((sp) => int(per[sp][l])).join(' | ')} |`).join('\n');
  const total = SPLITS.map((sp) => int(d[sp].length)).join(' | ');
  return `---
license: other
license_name: wordnet-3.0
license_link: LICENSE
language: en
task_categories:
- text-classification
pretty_name: makemost noun supersenses
---
# makemost-supersense

Noun supersense classification: given a WordNet 3.0 noun gloss (the definition, with its example sentences when it has any), name the lexicographer file ("supersense") of its synset, one of the ${s.labels} most frequent noun files. Small enough to ship with makemost (${int(SPLITS.reduce((n, sp) => n + bytes(d[sp]), 0))} bytes of records), for finetuning and evaluating classifiers and few-shot prompting on the default models.

## Records
\`{"text": gloss, "label": lexicographer file, "words": lemmas}\`, one JSON object per line. \`words\` is provenance: \`words + ": " + text\` is the synset's document in the default models' corpus (tests check every record's split against it).

\`labels.json\` lists the labels sorted by name; that is the order of the class ids \`makemost finetune\` gives them (label names are numbered in sorted order, as HF \`run_glue\` does).

| id | label | train | validation | test |
|---|---|---|---|---|
${rows}
| | **total** | ${total} |

## How it was built
\`scripts/data/build_tasks.ts\` (helpers in \`scripts/data/tasks.ts\`) from Debian's WordNet package:

${sourceSection(src)}

1. Synsets are read from \`data.noun\`; the lexicographer file names come from the table of the package's lexnames(5WN) manual page (45 files).
2. Labels: the ${s.labels} noun files with the most synsets.
3. A synset is eligible if its gloss has at most ${s.maxWords} words and no other synset (of any part of speech) has the same gloss.
4. ${SPLIT_RULE}
5. Within a split, labels take turns — each label's records in the order of SHA-256(\`makemost-tasks\\n\` + text) — until the split holds ${int(s.caps.train)} (train), ${int(s.caps.validation)} (validation) or ${int(s.caps.test)} (test) records or runs out, so small labels are not drowned; records are written in that hash order. No randomness: the same package gives the same bytes.

## Rebuild
${REBUILD}

## Use
\`\`\`sh
npx makemost finetune models/makemost-gpt-tiny --task classification \\
  --data datasets/makemost-supersense/train.jsonl --validation datasets/makemost-supersense/validation.jsonl \\
  --block-size 64 --out runs/supersense
npx makemost eval runs/supersense --task classification --data datasets/makemost-supersense/test.jsonl
npx makemost classify-few-shot <gpt2-folder> --train datasets/makemost-supersense/train.jsonl \\
  --test datasets/makemost-supersense/test.jsonl --shots 4 --template "{text} = {label}" \\
  --labels ${labels.join(',')}
\`\`\`
The label words of few-shot prompting are the label names. The 128-position \`makemost-gpt-tiny\` fits only \`--shots 1\` beside the longest test glosses (55 tokens); use a model with a longer context for more demonstrations.

## License
${LICENSE_NOTE}
`;
}

/** The card of makemost-definitions. */
export function definitionsCard(src: SourceInfo, d: Record<Split, DefinitionRecord[]>, s: { pos: readonly string[]; maxWords: number; caps: Record<Split, number> }): string {
  const posName: Record<string, string> = { n: 'noun', v: 'verb', a: 'adjective', s: 'adjective satellite', r: 'adverb' };
  const words = (recs: readonly DefinitionRecord[]) => recs.reduce((n, r) => n + r.target.split(/\s+/).length, 0);
  const rows = SPLITS.map((sp) => `| ${sp} | ${int(d[sp].length)} | ${int(new Set(d[sp].map((r) => r.source.toLowerCase())).size)} | ${(words(d[sp]) / Math.max(1, d[sp].length)).toFixed(1)} | ${int(bytes(d[sp]))} |`).join('\n');
  return `---
license: other
license_name: wordnet-3.0
license_link: LICENSE
language: en
task_categories:
- text2text-generation
pretty_name: makemost word definitions
---
# makemost-definitions

Definition generation: given an English word or phrase, write its WordNet 3.0 definition. Sequence to sequence, small enough to ship with makemost, for the encoder–decoder and conditional-decoding methods on the default models.

## Records
\`{"source": word or phrase, "target": definition}\`, one JSON object per line; underscores in lemmas are spaces, adjective markers such as \`(a)\` are removed. \`source + ": " + target\` is the synset's document in the default models' corpus (tests check every record's split against it).

| split | records | distinct words | mean target words | bytes |
|---|---|---|---|---|
${rows}

## How it was built
\`scripts/data/build_tasks.ts\` (helpers in \`scripts/data/tasks.ts\`) from Debian's WordNet package:

${sourceSection(src)}

1. Synsets are read from \`data.noun\`, \`data.verb\` and \`data.adj\` (${s.pos.map((p) => posName[p]).join(', ')}).
2. A synset is eligible if it has a single lemma, its gloss holds no example sentence (no \`"\`), has at most ${s.maxWords} words, and no other synset has the same gloss. The target is then the whole gloss, and the corpus document is exactly \`source: target\`.
3. ${SPLIT_RULE}
4. A word (case-folded) lives in one split only: the first of test, validation and train that holds one of its senses; its senses in other splits are dropped, so no source appears in two splits.
5. Per split the first ${int(s.caps.train)} (train), ${int(s.caps.validation)} (validation) or ${int(s.caps.test)} (test) records in the order of SHA-256(\`makemost-tasks\\n\` + source + \`\\n\` + target) are kept and written in that order. A polysemous word may keep several senses in its split. No randomness: the same package gives the same bytes.

## Rebuild
${REBUILD}

## Use
The fields are \`source\` and \`target\`, for the sequence-to-sequence methods. \`makemost finetune\` has no sequence-to-sequence task; \`--task lm --text-column target\` trains a causal LM on the definitions alone (without their words).

## License
${LICENSE_NOTE}
`;
}
