import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { metricsText } from '../lib/metrics';
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

describe('metricsText and the store gauges', () => {
  const gauges = { retryingByCondition: { failure: 2 }, held: 7, disabledConfigs: { service: 1, user: 3 } };

  it('shows the gauges of the store it is given, not of another service of the same process', async () => {
    const [mine, other] = await Promise.all([metricsText(async () => gauges), metricsText(async () => ({ ...gauges, held: 99 }))]);
    assert.equal(sample(mine, 'alerts_held_alerts'), 7);
    assert.equal(sample(mine, 'alerts_deliveries_retrying', '{condition="failure"}'), 2);
    assert.equal(sample(mine, 'alerts_configs_disabled', '{disabled_by="user"}'), 3);
    assert.equal(sample(other, 'alerts_held_alerts'), 99);
  });

  it('answers without the gauges when the store does not answer, and the next scrape is not held behind it', async function () {
    this.timeout(20_000);
    const silent = metricsText(() => new Promise(() => undefined));
    const next = metricsText(async () => gauges);
    const text = await silent;
    assert.match(text, /alerts_events_accepted_total/, 'the rest of the metrics are there');
    for (const series of ['alerts_deliveries_retrying{', 'alerts_configs_disabled{']) {
      assert.ok(!text.split('\n').some((l) => l.startsWith(series)), `no ${series} sample from a store that did not answer`);
    }
    assert.equal(sample(await next, 'alerts_held_alerts'), 7);
  });
});
