#!/bin/sh
# Rebuild the default models' corpus (.cache/corpus) from Debian packages; fails if the bytes change.
set -e
cd "$(dirname "$0")/../.."
npx tsc -p tsconfig.json
node dist/scripts/data/build_corpus.js "$@"
