/**
 * The bounded fuzz run of `pnpm test`: for every target, the regression
 * corpus (fuzz-corpus/<target>/*.bin) is replayed, then a fixed number of
 * cases from a fixed seed (LATCHKEY_FUZZ_SEED overrides it; a failure
 * prints the seed, the path and the input). The endpoint targets run on
 * SQLite and again, with a third of the cases, on PostgreSQL. Long runs:
 * `pnpm fuzz`.
 */
import { after, before, describe, test } from 'node:test';
import { ENGINES } from '../testing/harness.js';
import { ownScope, runBounded } from './fuzz-engine.js';
import { TARGETS } from './fuzz-targets.js';
import { fixtures } from './fuzz-fixtures.js';

for (const engine of ENGINES) {
  describe(`fuzz (${engine}): no input makes a parser throw anything but its typed error, and no endpoint answers 5xx or hangs`, () => {
    const scope = ownScope(engine);
    before(() => fixtures(scope).catch((e: Error) => (scope.skipped ? undefined : Promise.reject(e))));
    after(() => scope.close());
    // LATCHKEY_FUZZ_TARGETS=admin,csr runs only those (while working on one).
    const only = process.env.LATCHKEY_FUZZ_TARGETS?.split(',');
    for (const target of TARGETS) {
      if (engine !== 'sqlite' && target.kind === 'parser') continue;
      if (only && !only.includes(target.name)) continue;
      test(`${target.name}: ${target.what}`, async (t) => {
        if (scope.skipped) return t.skip(scope.skipped);
        await runBounded(target, await target.open(scope), engine === 'sqlite' ? target.boundedRuns : Math.ceil(target.boundedRuns / 3));
      });
    }
  });
}
