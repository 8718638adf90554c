/**
 * Streaming text out of a generation (HF transformers/generation/streamers.py: TextStreamer,
 * TextIteratorStreamer). Tokens are decoded as a whole each time and only the part that can no longer
 * change is emitted: text ending in U+FFFD (an incomplete UTF-8 character, split across byte-level tokens)
 * or in whitespace (which the next token's decoding may clean up, e.g. " ." → ".") is held back, so the
 * pieces always concatenate to the final decoded text.
 */
import type { CausalLM } from '../models/types.js';
import { generate, type GenerateOptions, type GenerationTokenizer } from './generate.js';
import { cutAtStopString, type TokenDecoder } from './stopping.js';

/** What generate() feeds while decoding (HF BaseStreamer): new tokens of the single row, then end(). */
export interface Streamer {
  /** Called once before decoding, with the resolved stop strings (so the text can be cut after them). */
  start?(info: { stopStrings: string[] }): void;
  /** Tokens just generated. */
  put(tokens: number[]): void;
  /** Generation finished (also after an abort). */
  end(): void;
}

/** Options of the incremental decoder and TextStreamer. */
export interface StreamTextOptions {
  /** Leave special tokens (EOS…) out of the text; default true. */
  skipSpecialTokens?: boolean;
  /** Cut the text right after the first of these it contains. */
  stopStrings?: string[];
}

const HELD_BACK = /[\uFFFD\s]+$/u;

/** Turns a growing list of token ids into text pieces that never need to be taken back. */
export class IncrementalDecoder {
  private ids: number[] = [];
  private emitted = '';
  private stopStrings: string[];

  constructor(private readonly tokenizer: TokenDecoder, private readonly options: StreamTextOptions = {}) {
    this.stopStrings = options.stopStrings ?? [];
  }

  /** Set the stop strings (before the first token). */
  setStopStrings(stopStrings: string[]): void {
    this.stopStrings = stopStrings.slice();
  }

  /** Add tokens; returns the newly stable text ('' when nothing is). */
  push(tokens: number[]): string {
    this.ids.push(...tokens);
    let text = this.decode();
    const cut = this.stopStrings.length ? cutAtStopString(text, this.stopStrings) : text;
    if (cut.length < text.length) {
      text = cut;
    } else {
      text = text.replace(HELD_BACK, '');
      // A stop string may be forming at the end: keep back what could be its beginning.
      const longest = Math.max(0, ...this.stopStrings.map((s) => s.length));
      if (longest > 1) text = text.slice(0, Math.max(this.emitted.length, text.length - (longest - 1)));
    }
    return this.emit(text);
  }

  /** Everything not yet emitted (the end of the stream). */
  flush(): string {
    const text = this.decode();
    return this.emit(this.stopStrings.length ? cutAtStopString(text, this.stopStrings) : text);
  }

  private decode(): string {
    return this.tokenizer.decode(this.ids, { skipSpecialTokens: this.options.skipSpecialTokens ?? true });
  }

  private emit(text: string): string {
    if (text.length <= this.emitted.length || !text.startsWith(this.emitted)) return '';
    const piece = text.slice(this.emitted.length);
    this.emitted = text;
    return piece;
  }
}

/**
 * HF's TextStreamer as a callback: `onText(piece, final)` gets each stable piece of the new text, and a
 * last call with final = true. Pass it to generate() as `streamer`; override `onText` or give a callback.
 */
export class TextStreamer implements Streamer {
  private readonly decoder: IncrementalDecoder;
  private readonly callback?: (piece: string, final: boolean) => void;

  constructor(tokenizer: TokenDecoder, options: StreamTextOptions & { onText?: (piece: string, final: boolean) => void } = {}) {
    this.decoder = new IncrementalDecoder(tokenizer, options);
    this.callback = options.onText;
  }

  start(info: { stopStrings: string[] }): void {
    if (info.stopStrings.length) this.decoder.setStopStrings(info.stopStrings);
  }

  put(tokens: number[]): void {
    const piece = this.decoder.push(tokens);
    if (piece) this.onText(piece, false);
  }

  end(): void {
    this.onText(this.decoder.flush(), true);
  }

  /** Receives the text; the default calls the `onText` option. */
  onText(piece: string, final: boolean): void {
    this.callback?.(piece, final);
  }
}

/**
 * Stream the new text of one prompt as an async iterator of pieces (HF TextIteratorStreamer). Breaking
 * out of the loop aborts the generation and waits for it to free its tensors; `options.signal` aborts too.
 */
export async function* generateStream(model: CausalLM, tokenizer: GenerationTokenizer, prompt: string | number[], options: Omit<GenerateOptions, 'tokenizer' | 'streamer'> = {}): AsyncGenerator<string, void, undefined> {
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: unknown;
  const controller = new AbortController();
  const forward = (): void => controller.abort();
  options.signal?.addEventListener('abort', forward);
  if (options.signal?.aborted) controller.abort();
  const streamer = new TextStreamer(tokenizer, {
    skipSpecialTokens: options.skipSpecialTokens,
    onText: (piece) => { if (piece) queue.push(piece); wake?.(); },
  });
  const input = typeof prompt === 'string' ? prompt : [prompt];
  const run = generate(model, input, { ...options, tokenizer, streamer, signal: controller.signal })
    .catch((e: unknown) => { failure = e; })
    .finally(() => { finished = true; wake?.(); });
  try {
    for (;;) {
      while (queue.length) yield queue.shift() as string;
      if (finished) break;
      await new Promise<void>((resolve) => { wake = resolve; });
      wake = undefined;
    }
    if (failure !== undefined) throw failure;
  } finally {
    controller.abort();
    options.signal?.removeEventListener('abort', forward);
    await run;
  }
}
