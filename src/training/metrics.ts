/**
 * Where training records go and how progress is measured. Records are HF `log_history` entries (`step`,
 * `epoch`, `loss`, `learning_rate`, `grad_norm`, `eval_*`), written one JSON object per line. The file sink
 * loads `node:fs` only when used, so the trainer itself stays usable in browsers.
 */

/** One line of the metrics log. */
export type MetricsRecord = Record<string, number | string | boolean | null>;

/** Receives each record; may be async (the trainer awaits it). */
export type MetricsSink = (record: MetricsRecord) => void | Promise<void>;

/** Append records as JSON lines to `path` (created if absent; Node only). */
export function jsonLinesFile(path: string): MetricsSink {
  let fs: typeof import('node:fs/promises') | undefined;
  return async (record) => {
    fs ??= await import('node:fs/promises');
    await fs.appendFile(path, JSON.stringify(record) + '\n');
  };
}

/** A sink that keeps records in an array (tests, the loss-curve plot). */
export function memorySink(): MetricsSink & { records: MetricsRecord[] } {
  const records: MetricsRecord[] = [];
  const sink = (r: MetricsRecord) => {
    records.push(r);
  };
  return Object.assign(sink, { records });
}

/** Parse a JSON-lines metrics file's text back into records (blank lines skipped). */
export function parseJsonLines(text: string): MetricsRecord[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as MetricsRecord);
}

/** Running means over a logging window (HF averages the loss over the steps since the last log). */
export class WindowMean {
  private sum = 0;
  private n = 0;
  add(x: number): void {
    this.sum += x;
    this.n += 1;
  }
  get count(): number {
    return this.n;
  }
  /** Mean since the last take(), then reset. */
  take(): number {
    const m = this.n ? this.sum / this.n : NaN;
    this.sum = this.n = 0;
    return m;
  }
}

/** Throughput and time left, from wall-clock times of completed updates (clock injected for tests). */
export class Progress {
  private readonly start: number;
  private tokens = 0;
  private updates = 0;
  constructor(private readonly totalUpdates: number, private readonly firstUpdate: number, private readonly now: () => number) {
    this.start = now();
  }
  /** Seconds since the start. */
  elapsed(): number {
    return (this.now() - this.start) / 1000;
  }
  /** Record one update of `tokens` tokens (0 when unknown). */
  update(tokens: number): { tokensPerSecond?: number; eta?: number; elapsed: number } {
    this.updates += 1;
    this.tokens += tokens;
    const elapsed = this.elapsed();
    const perUpdate = elapsed / this.updates;
    const left = Math.max(0, this.totalUpdates - (this.firstUpdate + this.updates));
    return {
      elapsed,
      tokensPerSecond: this.tokens > 0 && elapsed > 0 ? this.tokens / elapsed : undefined,
      eta: Number.isFinite(this.totalUpdates) ? left * perUpdate : undefined,
    };
  }
}
