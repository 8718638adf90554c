#!/usr/bin/env node
// The `makemost` command: the compiled CLI (run `npm run build` first when working from a clone).
import('../dist/src/cli/main.js')
  .then((m) => m.main(process.argv))
  .catch((e) => {
    if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli')) {
      process.stderr.write('makemost: the compiled CLI is missing. HINT: run `npm install` (it builds) or `npm run build`.\n');
    } else {
      process.stderr.write(`makemost: ${e && e.stack ? e.stack : e}\n`);
    }
    process.exitCode = 1;
  });
