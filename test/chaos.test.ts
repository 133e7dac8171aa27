import assert from 'node:assert/strict';
import { runChaos, summarize, type ChaosResult } from '../bench/chaos';
import type { TestPostgres } from './support/postgres';
import { sharedPostgres } from './support/stores';

/**
 * The short chaos run (issue 5): the same runner as `npm run chaos`
 * (bench/chaos.ts) with small parameters. The API and two workers run as
 * processes on PostgreSQL with a file-backed Temporal dev server; the receiver
 * answers 30 % of requests 503 and leaves 5 % unanswered; workers are SIGKILLed
 * every few seconds and the dev server is restarted once. Nothing may be lost
 * and every request the receiver saw must have its log row. Duplicates are
 * at-least-once and only reported. Waits are generous: a loaded 2-core machine
 * must not fail it on timing.
 */
describe('chaos: worker SIGKILLs, a dev server restart and a flaky receiver lose no alert', function () {
  this.timeout(15 * 60_000);
  let postgres: TestPostgres | undefined;
  let databaseUrl: string | undefined;
  let result: ChaosResult | undefined;

  before(async function () {
    this.timeout(10 * 60_000);
    postgres = await sharedPostgres();
    databaseUrl = await postgres.createDatabase();
  });

  after(async function () {
    this.timeout(60_000);
    if (databaseUrl) await postgres?.dropDatabase(databaseUrl);
  });

  it('delivers every accepted alert at least once and logs every attempt', async () => {
    result = await runChaos({
      seconds: 50,
      rate: 6,
      workers: 2,
      killEveryMs: 6_000,
      devServerRestartAtMs: 18_000,
      drainTimeoutMs: 8 * 60_000,
      databaseUrl: databaseUrl!,
      log: (line) => process.stderr.write(`      [chaos] ${line}\n`),
    });
    for (const line of summarize(result)) process.stderr.write(`      [chaos] ${line}\n`);
    assert.equal(result.notAccepted, 0, 'every event was accepted (resent after 503s)');
    assert.ok(result.accepted >= 200, `a few hundred alerts (${result.accepted})`);
    assert.ok(result.workerKills >= 3, `at least 3 worker SIGKILLs (${result.workerKills})`);
    assert.equal(result.devServerRestarts, 1);
    assert.ok(result.requests.answered503 > 0 && result.requests.leftHanging > 0, 'the receiver failed and hung some requests');
    assert.equal(result.lost, 0, `lost alerts: ${result.lostIds.join(', ')}`);
    assert.ok(result.drainedInTime, 'every delivery ended');
    assert.equal(result.logRows.deliveriesMissingRows, 0, `requests without log rows: ${result.logRows.examples.join('; ')}`);
    assert.ok(result.ok);
  });
});
