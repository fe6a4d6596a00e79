/**
 * The bounded fuzz run of `pnpm test`: for every target, the regression
 * corpus (fuzz-corpus/<target>/*.bin) is replayed, then a fixed number of
 * cases from a fixed seed (LATCHKEY_FUZZ_SEED overrides it; a failure
 * prints the seed, the path and the input). Long runs: `pnpm fuzz`.
 */
import { after, before, describe, test } from 'node:test';
import { ownScope, runBounded } from './fuzz-engine.js';
import { TARGETS } from './fuzz-targets.js';
import { fixtures } from './fuzz-fixtures.js';

describe('fuzz: no input makes a parser throw anything but its typed error, and no endpoint answers 5xx or hangs', () => {
  const scope = ownScope();
  before(() => fixtures(scope));
  after(() => scope.close());
  for (const target of TARGETS) {
    test(`${target.name}: ${target.what}`, async () => {
      await runBounded(target, await target.open(scope));
    });
  }
});
