// Dependencies point one way (docs/architecture.md "Layout"): agent, server -> packages/*.
// ESLint checks imports; this checks the declared dependencies, so a
// workspace link can't sneak the other way.
import { readFileSync, existsSync } from 'node:fs';

const forbidden = {
  agent: ['@latchkey/server'],
  server: ['@latchkey/agent'],
  'packages/pki': ['@latchkey/server', '@latchkey/agent', '@latchkey/test'],
  'packages/tpm': ['@latchkey/server', '@latchkey/agent', '@latchkey/test', '@latchkey/protocol'],
  'packages/cli': ['@latchkey/server', '@latchkey/agent', '@latchkey/test', '@latchkey/pki', '@latchkey/protocol'],
  'packages/protocol': ['@latchkey/server', '@latchkey/agent', '@latchkey/test', '@latchkey/pki'],
};
let bad = 0;
for (const [dir, names] of Object.entries(forbidden)) {
  const file = `${dir}/package.json`;
  if (!existsSync(file)) continue;
  const pkg = JSON.parse(readFileSync(file, 'utf8'));
  const deps = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.peerDependencies, ...pkg.optionalDependencies };
  for (const n of names) {
    if (n in deps) {
      console.error(`${file}: must not depend on ${n} (see docs/architecture.md "Layout")`);
      bad++;
    }
  }
}
if (bad) process.exit(1);
console.log('package boundaries: ok');
