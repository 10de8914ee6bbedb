// DOT on stdin -> SVG on stdout, with Graphviz compiled to WebAssembly (@viz-js/viz from
// package.json), so `make dag` needs no system graphviz. Any failure: one line, exit 1.
import { instance } from "@viz-js/viz";

function fail(message) {
  process.stderr.write(`dot2svg: ${message}\n`);
  process.exit(1);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

try {
  const dot = await readStdin();
  if (!dot.trim()) fail("no DOT on stdin (did the command before the pipe fail?)");
  const viz = await instance();
  const result = viz.render(dot, { format: "svg" });
  if (result.status !== "success") {
    const first = result.errors.find((e) => e.level === "error") ?? result.errors[0];
    fail(`Graphviz could not render the DOT: ${first ? first.message.trim() : "unknown error"}`);
  }
  process.stdout.write(result.output);
} catch (err) {
  fail(String(err && err.message ? err.message : err).split("\n")[0]);
}
