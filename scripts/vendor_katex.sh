#!/usr/bin/env bash
# Copy KaTeX, the documentation's math renderer, from the npm registry into docs/assets/katex,
# so the site renders formulas offline: no CDN when it is built or read.
#
#     bash scripts/vendor_katex.sh 0.19.1
#
# Only the woff2 fonts are kept: every browser that runs KaTeX reads them, and the stylesheet
# lists them first.
set -euo pipefail
version="${1:?usage: scripts/vendor_katex.sh VERSION}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "katex@$version" >/dev/null && tar xzf "katex-$version.tgz")
dest=docs/assets/katex
rm -rf "$dest"
mkdir -p "$dest/contrib" "$dest/fonts"
cp "$work/package/dist/katex.min.js" "$work/package/dist/katex.min.css" "$work/package/LICENSE" "$dest/"
cp "$work/package/dist/contrib/auto-render.min.js" "$dest/contrib/"
cp "$work/package/dist/fonts/"*.woff2 "$dest/fonts/"
echo "$version" > "$dest/VERSION"
echo "KaTeX $version in $dest"
