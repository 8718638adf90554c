/** The models this package ships (trained by scripts/train_defaults.ts), found relative to the package root. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) return process.cwd();
    d = up;
  }
  return d;
}

/** Folder of a shipped default model, or undefined when it is not there. */
export function defaultModel(name: 'makemost-gpt-tiny' | 'makemost-bert-tiny'): string | undefined {
  const dir = join(packageRoot(), 'models', name);
  return existsSync(join(dir, 'model.safetensors')) ? dir : undefined;
}
