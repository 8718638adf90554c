/**
 * The project's error classes (STYLE habit 10): every message says what went wrong, where, what was
 * expected, what was found, and how to fix it. This file imports nothing, so every layer may use it.
 */

/** Base class: `hint` names the fix, and is appended to the message on a line of its own. */
export class MakemostError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(hint ? `${message}\nHINT: ${hint}` : message);
    this.name = new.target.name;
  }
}

/** A config.json (or generation/training options) that is missing a field or holds an invalid value. */
export class ConfigError extends MakemostError {}

/** A checkpoint file that cannot be read, or tensors that do not match the model (lists every key). */
export class CheckpointError extends MakemostError {}

/** A tensor or input whose shape, dtype or values do not fit the operation. */
export class ShapeError extends MakemostError {}

/** An option or format we do not implement; the message names the nearest supported alternative. */
export class UnsupportedError extends MakemostError {}
