import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/** the value of one sample line of a Prometheus text exposition, or 0 when absent */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('GET /metrics', () => {
  let stack: TestStack;
  let receiver: Receiver;
  before(async function () {
    this.timeout(120_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });
  after(() => receiver.close());

  it('counts events, deliveries and attempts, and the dispatch latency of each alert', async () => {
    const before = await (await fetch(`${stack.apiUrl}/metrics`)).text();
    const workflowId = `wf_metrics_${randomBytes(4).toString('hex')}`;
    const url = receiver.on(`/${workflowId}`, () => ({ status: 200 }));
    assert.equal((await stack.api('POST', '/api/alerts/config', { config: { workflowId, name: 'm', conditions: [{ type: 'failure' }], webhook: { url } } })).status, 201);
    const accepted = await stack.api('POST', '/api/events', { id: `evt_${randomBytes(4).toString('hex')}`, type: 'run.failed', workflowId, runId: 'run_1' });
    assert.equal(accepted.status, 202);
    await receiver.waitFor(`/${workflowId}`, 1);
    // the attempt's counters move right after the receiver answers
    await new Promise((r) => setTimeout(r, 300));

    const res = await fetch(`${stack.apiUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const after = await res.text();
    const grew = (name: string, labels = '') => sample(after, name, labels) - sample(before, name, labels);
    assert.equal(grew('alerts_events_accepted_total', '{type="run.failed"}'), 1);
    assert.equal(grew('alerts_deliveries_started_total', '{condition="failure",duplicate="false"}'), 1);
    assert.ok(grew('alerts_delivery_attempts_total', '{condition="failure",outcome="delivered"}') >= 1);
    assert.ok(grew('alerts_dispatch_latency_seconds_count') >= 1);
    assert.match(after, /alerts_http_request_duration_seconds_count\{method="POST",route="\/api\/events",status="202"\} \d+/);
  });
});
