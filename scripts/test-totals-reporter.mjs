// A node:test reporter that keeps only the run's summary counts (the
// top-level diagnostics: tests, pass, fail, cancelled, skipped, todo), one
// "name value" per line. scripts/run-tests.mjs adds it beside `spec` to add
// up several runs into one last line.
export default async function* totals(source) {
  for await (const e of source) {
    if (e.type === 'test:diagnostic' && e.data.nesting === 0 && /^(tests|pass|fail|cancelled|skipped|todo) \d+$/.test(e.data.message)) yield `${e.data.message}\n`;
  }
}
