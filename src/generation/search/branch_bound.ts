/**
 * The depth-first branch-and-bound engine behind exact mode search (methods.md §5.2, after Stahlberg &
 * Byrne 2019 and Yoshida, Goyal & Gimpel 2024). Log-probabilities only fall as tokens are appended, so a
 * prefix scoring ≤ the bound of every length it could still end at has no completion that can win.
 *
 * Memory: the children of one node are scored lazily, a few siblings per batched forward against the
 * parent's cache row. A group's tensors (one cache row per sibling) are reference-counted by the nodes
 * that still need them (the siblings themselves, then their unscored children) and freed at zero; a
 * `finally` frees whatever is left, so success, budget, abort and throws all leave no tensor behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeAll, tidy } from '../../backend/memory.js';
import type { KVCache } from '../../nn/attention.js';
import type { CausalLM, DecoderOutput } from '../../models/types.js';
import { prefill } from '../state.js';

/** Why a search stopped: it finished (the result is proven), ran out of budget, or was aborted. */
export type StopReason = 'done' | 'budget' | 'abort';

/** Limits on the work of one search; whichever runs out first stops it. */
export interface SearchBudget {
  /** Node expansions (each is one next-token distribution examined). */
  nodes?: number;
  /** Wall-clock milliseconds. */
  ms?: number;
}

/** What the search may generate: the length rules and the constraint on complete outputs. */
export interface SearchRules {
  /** Longest content (tokens before the EOS) a node may reach. */
  maxDepth: number;
  /** Tokens that end a sequence. */
  eosTokenIds: number[];
  /** May a sequence end (with an EOS) after `depth` content tokens? */
  eosAllowed: (depth: number) => boolean;
  /** Complete outputs (EOS included) the caller accepts; rejected ones are never recorded. */
  accept?: (tokens: number[]) => boolean;
}

/** The incumbent(s): the pruning bound for each depth, and where better completions are reported. */
export interface SearchBounds {
  /** A node with `depth` content tokens survives only if its log-probability is strictly above this. */
  bound(depth: number): number;
  /** Would a complete output with `depth` content tokens and this log-probability improve an incumbent? */
  beats(depth: number, logprob: number): boolean;
  /** Record a complete output (EOS included) with `depth` content tokens that `beats`. */
  offer(depth: number, logprob: number, tokens: number[]): void;
}

/** How to run: batching, budget, cancellation. */
export interface SearchControl {
  /** Siblings scored together in one forward (default 8). */
  batchSize?: number;
  budget?: SearchBudget;
  signal?: AbortSignal;
}

/** Work done and whether the bounds' incumbents are proven optimal. */
export interface SearchStats {
  provenOptimal: boolean;
  stopReason: StopReason;
  nodesExpanded: number;
  ms: number;
}

/** Siblings scored by one forward: one cache row each and their next-token log-probs, row-major [K, V]. */
interface Group {
  cache: KVCache;
  lps: Float32Array;
  refs: number;
}

/** A prefix on the stack; `group`/`row` are set once its own next-token distribution is computed. */
interface Node {
  parent: Node | null;
  token: number;
  depth: number;
  /** log p(prefix | prompt), accumulated in float64. */
  lp: number;
  group?: Group;
  row: number;
}

const NONE = new Float32Array(0);

function tokensOf(n: Node): number[] {
  const out: number[] = [];
  for (let m: Node | null = n; m && m.parent; m = m.parent) out.push(m.token);
  return out.reverse();
}

/** Let timers run, so an AbortController fired from one is seen. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Depth-first branch-and-bound over log p(y | prompt); the bounds object holds the result. */
export async function branchAndBound(model: CausalLM, prompt: number[], rules: SearchRules, bounds: SearchBounds, ctl: SearchControl = {}): Promise<SearchStats> {
  const t0 = performance.now();
  const V = model.dims().vocab;
  const batchSize = ctl.batchSize ?? 8;
  const isEos = new Uint8Array(V);
  for (const e of rules.eosTokenIds) isEos[e] = 1;
  const live = new Set<Group>();
  const release = (g: Group): void => {
    if (--g.refs > 0) return;
    disposeAll(g.cache);
    g.lps = NONE;
    live.delete(g);
  };
  const holding = (n: Node): Group => (n.group ?? (n.parent as Node).group) as Group;

  const stopFor = (expanded: number): StopReason | null => {
    if (ctl.signal?.aborted) return 'abort';
    const b = ctl.budget;
    if (b?.nodes !== undefined && expanded >= b.nodes) return 'budget';
    if (b?.ms !== undefined && performance.now() - t0 >= b.ms) return 'budget';
    return null;
  };

  /** One forward over `tokens` (one per row), each row continuing the parent's cache row. */
  const scoreRows = async (parent: Group, row: number, tokens: number[]): Promise<Group> => {
    const single = parent.cache[0].key.shape[0] === 1 && tokens.length === 1;
    let tiled: KVCache = parent.cache;
    if (!single) {
      const idx = tf.tensor1d(tokens.map(() => row), 'int32');
      tiled = tidy(() => parent.cache.map((l) => ({ key: tf.gather(l.key, idx), value: tf.gather(l.value, idx) })));
      idx.dispose();
    }
    let out: DecoderOutput;
    try {
      out = model.forward(tokens.map((t) => [t]), { cache: tiled });
    } finally {
      if (!single) disposeAll(tiled);
    }
    const group: Group = { cache: out.cache, lps: NONE, refs: tokens.length };
    live.add(group);
    let lp: tf.Tensor | undefined;
    try {
      lp = tidy(() => tf.logSoftmax(out.logits.squeeze([1])));
    } finally {
      out.logits.dispose();
    }
    try {
      group.lps = (await lp.data()) as Float32Array;
    } finally {
      lp.dispose();
    }
    return group;
  };

  /** Score `n` together with the next unscored siblings below it on the stack (the likeliest ones). */
  const scoreSiblings = async (n: Node, stack: Node[]): Promise<void> => {
    const parent = n.parent as Node;
    const batch = [n];
    for (let i = stack.length - 1; i >= 0 && batch.length < batchSize; i--) {
      const s = stack[i];
      if (s.group || s.parent !== parent || s.lp <= bounds.bound(s.depth)) break;
      batch.push(s);
    }
    const pg = parent.group as Group;
    const group = await scoreRows(pg, parent.row, batch.map((b) => b.token));
    batch.forEach((b, i) => {
      b.group = group;
      b.row = i;
      release(pg);
    });
  };

  const expand = (n: Node, stack: Node[]): void => {
    const g = n.group as Group;
    const off = n.row * V;
    if (rules.eosAllowed(n.depth)) {
      for (const e of rules.eosTokenIds) {
        const s = n.lp + g.lps[off + e];
        if (!bounds.beats(n.depth, s)) continue;
        const tokens = [...tokensOf(n), e];
        if (!rules.accept || rules.accept(tokens)) bounds.offer(n.depth, s, tokens);
      }
    }
    if (n.depth >= rules.maxDepth) return;
    const b = bounds.bound(n.depth + 1);
    const kids: number[] = [];
    for (let v = 0; v < V; v++) if (!isEos[v] && n.lp + g.lps[off + v] > b) kids.push(v);
    // Ascending, so the likeliest child is popped first (a greedy dive tightens the bound early);
    // among equal scores the lowest id is popped first, as argmax would pick it.
    kids.sort((a, c) => g.lps[off + a] - g.lps[off + c] || c - a);
    for (const v of kids) stack.push({ parent: n, token: v, depth: n.depth + 1, lp: n.lp + g.lps[off + v], row: 0 });
    g.refs += kids.length;
  };

  let expanded = 0;
  let stop: StopReason = 'done';
  try {
    if (ctl.signal?.aborted) return { provenOptimal: false, stopReason: 'abort', nodesExpanded: 0, ms: performance.now() - t0 };
    const root = await scoreRoot(model, prompt, live);
    const stack: Node[] = [{ parent: null, token: -1, depth: 0, lp: 0, group: root, row: 0 }];
    let lastYield = performance.now();
    while (stack.length > 0) {
      const n = stack.pop() as Node;
      if (n.lp <= bounds.bound(n.depth)) {
        release(holding(n));
        continue;
      }
      const why = stopFor(expanded);
      if (why) {
        stop = why;
        break;
      }
      if (!n.group) await scoreSiblings(n, stack);
      expanded++;
      expand(n, stack);
      release(n.group as Group);
      if (ctl.signal && performance.now() - lastYield > 20) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
    }
  } finally {
    for (const g of live) disposeAll(g.cache);
    live.clear();
  }
  return { provenOptimal: stop === 'done', stopReason: stop, nodesExpanded: expanded, ms: performance.now() - t0 };
}

/** The root group: the prompt's cache and its next-token log-probs. */
async function scoreRoot(model: CausalLM, prompt: number[], live: Set<Group>): Promise<Group> {
  const state = prefill(model, [prompt]);
  const group: Group = { cache: state.cache, lps: NONE, refs: 1 };
  live.add(group);
  let lp: tf.Tensor | undefined;
  try {
    lp = tidy(() => tf.logSoftmax(state.logits));
  } finally {
    state.logits.dispose();
  }
  try {
    group.lps = (await lp.data()) as Float32Array;
  } finally {
    lp.dispose();
  }
  return group;
}
