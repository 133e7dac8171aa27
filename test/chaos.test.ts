import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runChaos, summarize, type ChaosResult } from '../bench/chaos';
import { startPostgres, type TestPostgres } from './support/postgres';
import { restartablePostgres, type RestartablePostgres } from './support/postgres-restart';

/**
 * The short chaos run (issue 5, and the hardening issue's fault-injection test): the same runner as
 * `npm run chaos` (bench/chaos.ts) with small parameters. The API and two workers run as processes
 * on a PostgreSQL server of this test's own with a file-backed Temporal dev server; the receiver
 * answers 30 % of requests 503 and leaves 5 % unanswered. Workers are SIGKILLed every few seconds,
 * and in turn the API is SIGKILLed, PostgreSQL restarted (fast, then immediate shutdown), the dev
 * server SIGKILLed and restarted gracefully, each started again on the same port (and data).
 * Immediate alerts and delay watches (runs finishing before, just after, long after their threshold,
 * or never) are sent and resent like MeshHook would. Nothing may be lost, no status may be wrong, no
 * route may answer a 5xx other than 503, and every request the receiver saw must have its log row.
 * A webhook POSTed again after its 2xx (the same webhook-id: at-least-once) must have a kill or an
 * outage between the 2xx and the POST again that explains it (bench/chaos.ts attributeDuplicates).
 * Waits are generous: a loaded 2-core machine must not fail it on timing.
 */
describe('chaos: SIGKILLed workers, API and Temporal, a restarted PostgreSQL and a flaky receiver lose no alert', function () {
  this.timeout(15 * 60_000);
  let postgres: TestPostgres | undefined;
  let restartable: RestartablePostgres | undefined;
  let result: ChaosResult | undefined;

  before(async function () {
    this.timeout(10 * 60_000);
    // its own server, not the shared one: it is restarted
    postgres = await startPostgres();
    restartable = await restartablePostgres(postgres);
  });

  after(async function () {
    this.timeout(60_000);
    await (restartable ?? postgres)?.stop();
  });

  it('delivers every immediate and every late delay alert, suppresses the runs that finished in time, and answers 503 but never 500', async () => {
    result = await runChaos({
      seconds: 80,
      rate: 5,
      delay: { runsPerSecond: 1, thresholdSeconds: 6 },
      workers: 2,
      killEveryMs: 6_000,
      // each kind twice, at 9, 18, … 72 s (later when one takes long), each down 3 s
      faultEveryMs: 9_000,
      outageMs: 3_000,
      restartPostgres: restartable && ((downForMs) => restartable!.restart('immediate', downForMs)),
      postgresNotRestarted: restartable ? undefined : 'TEST_DATABASE_URL names a server that is not ours',
      drainTimeoutMs: 4 * 60_000,
      databaseUrl: postgres!.url,
      log: (line) => process.stderr.write(`      [chaos] ${line}\n`),
    });
    for (const line of summarize(result)) process.stderr.write(`      [chaos] ${line}\n`);
    if (!result.ok) {
      // the whole result (timelines of the deliveries with a problem, the API's output) for the report
      const file = path.join(os.tmpdir(), `chaos-failed-${result.at.replace(/[:.]/g, '-')}.json`);
      fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
      process.stderr.write(`      [chaos] the whole result: ${file}\n`);
    }
    const r = result;
    assert.equal(r.notAccepted, 0, 'every event was accepted (resent after 503s and connection errors)');
    assert.ok(r.accepted >= 300, `a few hundred immediate alerts (${r.accepted})`);
    assert.ok(r.delay.runs >= 60, `delay runs (${r.delay.runs})`);
    for (const kind of ['before', 'just-after', 'long-after', 'never'] as const) {
      assert.ok(Object.values(r.delay.byKind[kind]).reduce((a, b) => a + b, 0) >= 10, `delay runs finishing ${kind} (${JSON.stringify(r.delay.byKind[kind])})`);
    }
    assert.ok(r.workerKills >= 3, `at least 3 worker SIGKILLs (${r.workerKills})`);
    assert.ok(r.apiKills >= 1, `the API was SIGKILLed (${r.apiKills})`);
    assert.ok(r.temporalKills >= 1, `the dev server was SIGKILLed (${r.temporalKills})`);
    assert.ok(r.devServerRestarts >= 1, `the dev server was restarted gracefully (${r.devServerRestarts})`);
    if (restartable) assert.ok(r.postgresRestarts >= 1, `PostgreSQL was restarted (${r.postgresRestarts})`);
    const events = r.answers['POST /api/events'] ?? {};
    assert.ok((events['connection error'] ?? 0) + (events['503'] ?? 0) > 0, `some events had to be sent again (${JSON.stringify(events)})`);
    assert.ok(r.requests.answered503 > 0 && r.requests.leftHanging > 0, 'the receiver failed and hung some requests');

    assert.equal(r.serverErrors.count, 0, `5xx answers other than 503: ${r.serverErrors.examples.join('; ')}`);
    assert.equal(r.unexpectedApiExits, 0, 'no API process exited on its own');
    assert.equal(r.lost, 0, `lost immediate alerts: ${r.lostIds.join(', ')}`);
    assert.equal(r.wrongStatuses, 0, `immediate alerts not delivered: ${r.wrongIds.join(', ')}`);
    assert.equal(r.delay.lost, 0, `lost delay alerts: ${JSON.stringify(r.delay.problems)}`);
    assert.equal(r.delay.wrong, 0, `wrong delay statuses: ${JSON.stringify(r.delay.problems)}`);
    assert.equal(r.delay.apiStoreMismatches, 0, 'the API answers the status the store holds');
    assert.ok(r.drainedInTime, 'every delivery ended');
    assert.equal(r.logRows.deliveriesMissingRows, 0, `requests without log rows: ${r.logRows.examples.join('; ')}`);
    // at-least-once: a webhook answered 2xx is POSTed again only when a kill or an outage cost its answer's record
    assert.deepEqual(r.duplicates.unexplained, [], 'immediate alerts POSTed again after a 2xx with no fault between');
    assert.deepEqual(r.delay.duplicates.unexplained, [], 'delay alerts POSTed again after a 2xx with no fault between');
    assert.ok(r.ok);
  });
});
