#!/usr/bin/env bash
# Usage: scripts/with-node.sh <major> <command> [args…]
#
# Runs a command with Node <major> first on PATH: `node`, and everything started through `#!/usr/bin/env node`
# (npm, npx, vitest, its workers, child processes), runs on that version. The binary comes from the npm
# registry's `node` package, installed on demand into .tools/node<major> (gitignored), never into the project's
# node_modules: there, node_modules/.bin/node would shadow the machine's Node in every npm script.
#
# Example: scripts/with-node.sh 24 npm run test:unit
set -euo pipefail
major="${1:?usage: scripts/with-node.sh <major> <command> [args…]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.tools/node$major"
bin="$prefix/node_modules/.bin"

if ! "$bin/node" --version 2>/dev/null | grep -q "^v$major\."; then
  echo "with-node: installing node@$major into ${prefix#"$root"/}" >&2
  mkdir -p "$prefix"
  [ -f "$prefix/package.json" ] || echo '{ "private": true }' >"$prefix/package.json"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "node@$major" >&2
fi

export PATH="$bin:$PATH"
actual="$(node --version)"
case "$actual" in
  "v$major".*) ;;
  *) echo "with-node: expected Node $major on PATH, got $actual" >&2; exit 1 ;;
esac
echo "with-node: $actual ($(command -v node))" >&2
[ "$#" -gt 0 ] || exit 0
exec "$@"
