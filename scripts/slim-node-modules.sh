#!/bin/sh
# Removes from a production node_modules (after `npm prune --omit=dev`) what
# Node never loads when it runs the service: better-sqlite3's compile leftovers,
# browser bundles of exceljs, pdfkit, fontkit and mediainfo.js (Node resolves
# their "node"/"require"/"import" entries, never these), source maps, type
# declarations, TypeScript sources (Node does not strip types under
# node_modules) and documentation. Licence files stay.
# Used by the Dockerfile's build stage and by .ci/deploy-smoke, which proves a
# slimmed install still starts, makes a picture, a thumbnail and an export.
set -eu
nm=${1:-node_modules}
[ -d "$nm/better-sqlite3" ] || { echo "slim-node-modules: $nm has no better-sqlite3; nothing to slim?" >&2; exit 1; }

# better-sqlite3 loads build/Release/better_sqlite3.node (via `bindings`) and lib/.
addon=$nm/better-sqlite3/build/Release/better_sqlite3.node
[ -f "$addon" ] || { echo "slim-node-modules: $addon is missing" >&2; exit 1; }
mv "$addon" "$nm/better-sqlite3/better_sqlite3.node.keep"
rm -rf "$nm/better-sqlite3/build" "$nm/better-sqlite3/deps" "$nm/better-sqlite3/src" "$nm/better-sqlite3/binding.gyp"
mkdir -p "$nm/better-sqlite3/build/Release"
mv "$nm/better-sqlite3/better_sqlite3.node.keep" "$addon"

# Browser builds: not reachable from Node's export conditions or main.
rm -rf "$nm/exceljs/dist" "$nm/jszip/dist" "$nm/bluebird/js/browser" \
  "$nm/mediainfo.js/dist/umd" "$nm/mediainfo.js/dist/esm-bundle" \
  "$nm/csv-stringify/dist/esm" "$nm/csv-stringify/dist/umd" "$nm/csv-stringify/dist/iife"
rm -f "$nm"/pdfkit/js/pdfkit.browser.* "$nm"/pdfkit/js/pdfkit.standalone.js "$nm"/pdfkit/js/pdfkit.*old.* \
  "$nm"/fontkit/dist/browser* "$nm/pngjs/browser.js"
find "$nm" -type d -path '*/pako/dist' -prune -exec rm -rf {} +
# The AWS SDK ships each package twice: Node takes dist-cjs (through "main", or
# the "node" condition, which comes before "import" in their exports); dist-es
# is for bundlers.
for dir in "$nm"/@aws-sdk/* "$nm"/@smithy/*; do
  [ -d "$dir/dist-cjs" ] && rm -rf "$dir/dist-es"
done
# exceljs's xlsx reader and what only it needs (unzipper and some eighty
# packages behind it): runstore imports exceljs's streaming writer alone
# (services/export/xlsx.ts). The paths are relative to the project root.
project=$(cd "$nm/.." && pwd)
node "$(dirname "$0")/unreachable-packages.mjs" "$nm" 'exceljs>unzipper' | while read -r path; do
  rm -rf "${project:?}/$path"
done
# yaml's browser build; swagger-ui's unbundled script (its index.html loads the bundle).
rm -rf "$nm/yaml/browser" "$nm/@fastify/swagger-ui/static/swagger-ui.js"

# Anything a compiler, an editor or a reader uses, never Node.
find "$nm" -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.tsbuildinfo' \
  -o -iname 'README*' -o -iname 'CHANGELOG*' -o -iname 'HISTORY*' -o -name '*.markdown' \
  -o \( -name '*.md' ! -iname 'LICEN*' ! -iname 'COPYING*' ! -iname 'NOTICE*' \) \) -delete
# Test and example folders at a package's root.
for dir in "$nm"/* "$nm"/@*/*; do
  [ -d "$dir" ] || continue
  rm -rf "$dir/test" "$dir/tests" "$dir/__tests__" "$dir/example" "$dir/examples" "$dir/.github" "$dir/.yarn" "$dir/docs"
done
