import { stopStack } from '../support/stack';

/** Root hook: stop the shared embedded stack (if a test started it) when the run is over. */
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopStack();
  },
};
