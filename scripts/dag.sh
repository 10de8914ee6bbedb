#!/usr/bin/env bash
# `make dag`: the demo plan as pictures, with no system graphviz (scripts/dot2svg.mjs renders
# DOT with Graphviz compiled to WebAssembly from package.json).
#   bash scripts/dag.sh OUT_DIR SNAKEMAKE_COMMAND...
# Writes OUT_DIR/dag.svg, OUT_DIR/rulegraph.svg (--forceall: the whole plan, the same whatever is
# already stored) and OUT_DIR/dag.mmd (Mermaid). Each file is written to a temporary name and
# moved into place only when complete; a failure prints one line naming its log and exits 1.
set -uo pipefail

out=$1
shift
logs=logs/dag
mkdir -p "$out" "$logs"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pcflow-dag.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "make dag: $1" >&2
  exit 1
}

# snakemake_to NAME FILE ARGS...: snakemake's stdout into FILE, its chatter into logs/dag/NAME.log.
snakemake_to() {
  local name=$1 file=$2
  shift 2
  "$@" >"$file" 2>"$logs/$name.log" ||
    fail "\`$*\` failed (exit $?) — see $logs/$name.log"
}

# Edges in a fixed order: Snakemake lists the rule graph's edges in (unordered) set order, so the
# same plan would otherwise draw a different SVG each run.
sorted_edges() {
  local edge='^[[:space:]]*[0-9]+ -> [0-9]+'
  grep -Ev "$edge" "$1" | grep -v '^}[[:space:]]*$'
  grep -E "$edge" "$1" | sort -V
  echo "}"
}

for graph in dag rulegraph; do
  snakemake_to "$graph" "$tmp/$graph.raw.dot" "$@" --forceall "--$graph"
  sorted_edges "$tmp/$graph.raw.dot" >"$tmp/$graph.dot"
  node scripts/dot2svg.mjs <"$tmp/$graph.dot" >"$tmp/$graph.svg" 2>"$logs/$graph-svg.log" ||
    fail "rendering $graph as SVG failed: $(head -1 "$logs/$graph-svg.log") (see $logs/$graph-svg.log)"
done
snakemake_to mermaid "$tmp/dag.mmd" "$@" --forceall --dag mermaid-js
[ -s "$tmp/dag.mmd" ] || fail "\`snakemake --dag mermaid-js\` wrote nothing — see $logs/mermaid.log"

mv "$tmp/dag.svg" "$tmp/rulegraph.svg" "$tmp/dag.mmd" "$out/"
echo "$out/dag.svg $out/rulegraph.svg $out/dag.mmd"
