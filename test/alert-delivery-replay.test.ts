import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

/**
 * AlertDelivery histories recorded by the workflow code of commit 83a7f0b (before fired delay watches
 * routed their alerts through silences and the noise pipeline) replay on today's code: a delay
 * watch that fired and delivered, one whose first attempt was retried, one suppressed. A watch
 * running when a worker of this version takes over must go on as it began (workflows/alert-delivery.ts,
 * ROUTE_DUE_ALERT_PATCH).
 */
describe('AlertDelivery replays the histories of earlier versions', function () {
  this.timeout(120_000);
  const recorded = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'alert-delivery-delay-histories-83a7f0b.json'), 'utf8')) as Record<string, object>;

  for (const [name, history] of Object.entries(recorded)) {
    it(`replays a delay watch that ${name === 'fired' ? 'fired and delivered' : name === 'retried' ? 'fired, was retried and delivered' : 'was suppressed'}`, async () => {
      const events = temporal.api.history.v1.History.fromObject(history);
      assert.ok((events.events?.length ?? 0) > 5, 'a whole history');
      await Worker.runReplayHistory({ workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.ts') }, events, `replay-${name}`);
    });
  }
});
