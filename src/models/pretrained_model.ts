/**
 * Base class of every top-level model: it knows its parsed config and HF class name, so it can save
 * itself as an HF folder (`model.save(dir)`, Node only; the file code loads on first use).
 */
import { Module } from '../nn/module.js';

/** A model that can be written back as an HF checkpoint folder. */
export abstract class PreTrainedModel extends Module {
  abstract readonly config: Record<string, unknown>;
  /** HF's class name, written to config.json `architectures`. */
  abstract readonly className: string;
  abstract readonly modelType: string;

  /** Write config.json + model.safetensors that HF transformers loads. */
  async save(dir: string): Promise<void> {
    const { savePretrained } = await import('./pretrained.js');
    return savePretrained(this, dir);
  }
}
