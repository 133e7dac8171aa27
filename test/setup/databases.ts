import { closeTestDatabases } from '../support/stores';

/**
 * Root hooks (loaded by .mocharc.cjs before every spec): once the whole run is over, stop the shared
 * PostgreSQL server of test/support/stores.ts and remove the PGlite folders. Nothing starts here: the
 * server starts on first use, so a run without PostgreSQL tests never needs PostgreSQL.
 */
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await closeTestDatabases();
  },
};
