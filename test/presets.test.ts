import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import type { DigestGroup } from '../lib/noise';
import { PRESETS, mergeTemplate } from '../lib/presets';
import { buildTemplateContext, defaultPayload, renderAlert } from '../lib/render';
import { alertConfigInputSchema, type ExecutionEvent } from '../lib/schemas';
import { SAMPLE_EVENT } from '../api/schemas';
import { PresetReceivers, type Service, type ServiceRequest } from './support/preset-receivers';
import { useStack, type TestStack } from './support/stack';

/**
 * The payload presets (lib/presets.ts, docs/presets.md) through the real delivery path: configs saved
 * with POST /api/alerts/config, alerts sent by POST /api/events and POST /api/alerts/test on the shared
 * embedded stack, received by stand-ins of Slack, Discord, Teams, PagerDuty and Opsgenie on 127.0.0.1
 * (test/support/preset-receivers.ts) that check each body against what the service documents and
 * answer a wrong one as the service would: a preset of the wrong shape fails its delivery.
 */

const uid = () => randomBytes(4).toString('hex');
/** a PagerDuty integration key: 32 letters and digits */
const ROUTING_KEY = randomBytes(16).toString('hex');
const GENIE_KEY = `GenieKey ${randomBytes(12).toString('hex')}`;
const ONE_ATTEMPT = { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 100, maxDurationMs: 10_000 };

interface LogRow {
  deliveryId: string;
  attempt: number;
  outcome: string;
  httpStatus: number | null;
  error: string | null;
  responseSnippet: string | null;
}

describe('payload presets (real deliveries to stand-ins of each receiver)', function () {
  let stack: TestStack;
  let receivers: PresetReceivers;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receivers = await PresetReceivers.start();
  });

  after(async () => {
    await receivers?.close();
  });

  /** what a config of this service needs besides the preset: its URL (the stand-in's), and its credential */
  function presetConfig(service: Service, workflowId: string, extra: { template?: unknown; headers?: Record<string, string> } = {}) {
    const url = receivers.url(service);
    const headers: Record<string, string> = { ...(service === 'opsgenie' ? { Authorization: GENIE_KEY } : {}), ...extra.headers };
    const template = service === 'pagerduty' ? mergeTemplate({ routing_key: ROUTING_KEY }, (extra.template ?? {}) as never) : extra.template;
    return {
      url,
      config: {
        workflowId,
        name: `${service} on-call`,
        conditions: [{ type: 'failure' }, { type: 'success' }],
        webhook: { url, headers, timeoutMs: 5_000 },
        payload: { preset: service, ...(template === undefined ? {} : { template }) },
        retry: ONE_ATTEMPT,
      },
    };
  }

  async function save(config: unknown): Promise<any> {
    const res = await stack.api('POST', '/api/alerts/config', { config });
    assert.equal(res.status, 201, `POST /api/alerts/config: ${JSON.stringify(res.body)}`);
    return res.body.config;
  }

  function failedEvent(workflowId: string, fields: Partial<ExecutionEvent> = {}): ExecutionEvent {
    return {
      id: `evt_${uid()}`,
      type: 'run.failed',
      occurredAt: '2026-11-29T10:00:00Z',
      workflowId,
      runId: `run_${uid()}`,
      workflow: { name: 'Orders sync', version: 3 },
      run: { startedAt: '2026-11-29T09:59:58Z', finishedAt: '2026-11-29T10:00:00Z' },
      error: { message: 'HTTP 500 from CRM', step: 'createContact' },
      data: { customerId: 'cus_42' },
      ...fields,
    };
  }

  /** posts an event that starts one delivery; returns its id */
  async function postEvent(event: ExecutionEvent): Promise<string> {
    const res = await stack.api('POST', '/api/events', event);
    assert.equal(res.status, 202, `POST /api/events: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.deliveries.length, 1, JSON.stringify(res.body));
    return res.body.deliveries[0].deliveryId;
  }

  /** the delivery's one attempt, once logged */
  async function attemptOf(deliveryId: string): Promise<LogRow> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await stack.api('GET', `/api/alerts/logs?deliveryId=${encodeURIComponent(deliveryId)}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      if (res.body.logs.length > 0) return res.body.logs[0];
      if (Date.now() > deadline) throw new Error(`no attempt of ${deliveryId} was logged within 20 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** the one request a stand-in received at `url`, accepted */
  async function acceptedAt(url: string, count = 1): Promise<ServiceRequest> {
    const requests = await receivers.waitFor(url, count);
    const last = requests[count - 1];
    assert.deepEqual(last.problems, [], `${last.service} refused the body (${last.status}): ${last.problems.join('; ')}\n${last.raw.slice(0, 3000)}`);
    return last;
  }

  const SERVICES: Service[] = ['slack', 'discord', 'teams', 'pagerduty', 'opsgenie', 'generic'];

  describe('each preset is accepted by its receiver', () => {
    for (const service of SERVICES) {
      it(`${service}: a run.failed event and a test alert are delivered, in the shape the receiver documents`, async function () {
        this.timeout(60_000);
        const workflowId = `wf_preset_${service}_${uid()}`;
        const { url, config } = presetConfig(service, workflowId);
        const saved = await save(config);
        assert.equal(saved.payload.preset, service, 'the answer shows the preset');

        const deliveryId = await postEvent(failedEvent(workflowId));
        const request = await acceptedAt(url);
        const attempt = await attemptOf(deliveryId);
        assert.equal(attempt.outcome, 'delivered', JSON.stringify(attempt));
        assert.equal(attempt.httpStatus, request.status);
        // signed like every alert
        assert.equal(request.headers['webhook-id'], deliveryId);
        assert.match(String(request.headers['webhook-signature']), /^v1,/);

        const test = await stack.api('POST', '/api/alerts/test', { configId: saved.id });
        assert.equal(test.status, 200, JSON.stringify(test.body));
        assert.equal(test.body.outcome, 'delivered', JSON.stringify(test.body));
        await acceptedAt(url, 2);

        // what each one says, read the way its service reads it
        const body = request.body as any;
        if (service === 'slack') {
          assert.equal(body.blocks[0].text.text, 'Orders sync failed');
          assert.match(body.blocks[1].text.text, /Run `run_\w+` of \*Orders sync\* failed after 2 s\.\n\*Error\* in step `createContact`:\n```HTTP 500 from CRM```/);
        }
        if (service === 'discord') {
          assert.equal(body.embeds[0].title, 'Orders sync failed');
          assert.equal(body.embeds[0].color, 15548997, 'red, an integer');
          assert.deepEqual(body.allowed_mentions, { parse: [] });
        }
        if (service === 'teams') {
          assert.equal(body.attachments[0].content.body[0].text, 'Orders sync failed');
          assert.equal(body.attachments[0].content.body[0].color, 'Attention');
        }
        if (service === 'pagerduty') {
          assert.equal(new URL(url).pathname.endsWith('/v2/enqueue'), true);
          assert.equal(body.routing_key, ROUTING_KEY);
          assert.equal(body.event_action, 'trigger');
          assert.equal(body.dedup_key, `meshhook/${workflowId}/${saved.id}`, 'stable: the same for every failure of this config');
          assert.equal(body.payload.severity, 'error');
          assert.equal(body.payload.summary, 'Orders sync failed: HTTP 500 from CRM');
          const testBody = receivers.at(url)[1].body as any;
          assert.equal(testBody.dedup_key, `meshhook/${workflowId}/${saved.id}/test`, "a test alert does not touch the real incident");
        }
        if (service === 'opsgenie') {
          assert.equal(request.headers.authorization, GENIE_KEY);
          assert.equal(body.message, 'Orders sync failed');
          assert.equal(body.priority, 'P2');
          assert.equal(body.alias, `meshhook/${workflowId}/${saved.id}`);
        }
        if (service === 'generic') {
          // the default payload, as a config without a template sends it
          const ctx = buildTemplateContext(failedEvent(workflowId, { id: body.event.id, runId: body.run.id }), { id: saved.id, name: saved.name }, 'failure', deliveryId);
          assert.deepEqual(body, defaultPayload(ctx));
        }
      });
    }

    it('a succeeded run reads as good news (Slack header, Discord green, Teams Good, PagerDuty info)', async function () {
      this.timeout(60_000);
      for (const service of ['slack', 'discord', 'teams', 'pagerduty'] as const) {
        const workflowId = `wf_preset_ok_${service}_${uid()}`;
        const { url, config } = presetConfig(service, workflowId);
        await save(config);
        await postEvent(failedEvent(workflowId, { type: 'run.succeeded', error: undefined }));
        const body = (await acceptedAt(url)).body as any;
        if (service === 'slack') assert.equal(body.blocks[0].text.text, 'Orders sync succeeded');
        if (service === 'discord') assert.equal(body.embeds[0].color, 5763719);
        if (service === 'teams') assert.equal(body.attachments[0].content.body[0].color, 'Good');
        if (service === 'pagerduty') assert.equal(body.payload.severity, 'info');
      }
    });
  });

  describe('limits', () => {
    it('a 10,000-character error message (of &, < and >) and a 500-character workflow name are cut to fit every receiver', async function () {
      this.timeout(90_000);
      const message = '<&>'.repeat(3334).slice(0, 10_000);
      const name = 'N'.repeat(500);
      for (const service of SERVICES) {
        const workflowId = `wf_preset_long_${service}_${uid()}`;
        const { url, config } = presetConfig(service, workflowId);
        await save(config);
        const deliveryId = await postEvent(failedEvent(workflowId, { workflow: { name }, error: { message, step: 'S'.repeat(500) } }));
        const body = (await acceptedAt(url)).body as any;
        const attempt = await attemptOf(deliveryId);
        assert.equal(attempt.outcome, 'delivered', `${service}: ${JSON.stringify(attempt)}`);
        // cut, and said to be cut
        if (service === 'slack') {
          assert.equal(body.blocks[0].text.text.length, 90 + ' failed'.length);
          assert.ok(body.blocks[1].text.text.length <= 3000, `section: ${body.blocks[1].text.text.length}`);
          assert.match(body.blocks[1].text.text, /\.\.\.```$/);
        }
        if (service === 'discord') assert.match(body.embeds[0].description, /\.\.\.\n```$/);
        if (service === 'pagerduty') assert.ok(body.payload.summary.length <= 1024 && body.payload.summary.endsWith('...'));
        if (service === 'opsgenie') assert.ok(body.message.length <= 130 && body.description.length <= 15_000);
        if (service === 'generic') assert.equal(body.error.message, message, 'the generic body keeps the whole message');
      }
    });
  });

  describe('the receivers refuse a wrong shape, and the delivery fails', () => {
    const cases: { service: Service; template: unknown; status: number; reason: RegExp }[] = [
      { service: 'slack', template: { blocks: [{ type: 'header', text: { type: 'plain_text', text: '{{ workflow.name }} {{ error.message }}' } }] }, status: 400, reason: /blocks\[0\]\.text\.text: must be 150 or fewer/ },
      { service: 'discord', template: { embeds: [{ title: 'x', color: '#ED4245' }] }, status: 400, reason: /color: must be an integer/ },
      { service: 'teams', template: { attachments: [{ contentType: 'application/json', content: {} }] }, status: 400, reason: /contentType/ },
      { service: 'pagerduty', template: { payload: { severity: 'high' } }, status: 400, reason: /'payload\.severity' is invalid/ },
      { service: 'opsgenie', template: { details: { runMs: '{{ run.durationMs }}' } }, status: 422, reason: /details\.runMs: must be a string/ },
    ];
    for (const { service, template, status, reason } of cases) {
      it(`${service}: ${reason.source.replace(/\\/g, '')}`, async function () {
        this.timeout(30_000);
        const workflowId = `wf_preset_bad_${service}_${uid()}`;
        const { url, config } = presetConfig(service, workflowId, { template });
        await save(config);
        const deliveryId = await postEvent(failedEvent(workflowId, { error: { message: 'x'.repeat(200) } }));
        const [request] = await receivers.waitFor(url);
        assert.equal(request.status, status);
        assert.ok(request.problems.some((p) => reason.test(p)), request.problems.join('; '));
        const attempt = await attemptOf(deliveryId);
        assert.equal(attempt.outcome, 'failed', 'a 4xx stops the delivery');
        assert.equal(attempt.httpStatus, status);
      });
    }
  });

  describe('customising a preset', () => {
    it("merges payload.template over the preset's: objects key by key, arrays and values replaced", async function () {
      this.timeout(30_000);
      const workflowId = `wf_preset_custom_${uid()}`;
      const { url, config } = presetConfig('pagerduty', workflowId, {
        template: { payload: { severity: 'critical', custom_details: { team: 'payments', run: '{{ run.id }}' } }, images: [{ src: 'https://example.com/a.png' }] },
      });
      const saved = await save(config);
      assert.deepEqual(saved.payload.template.payload.severity, 'critical', 'the answer keeps the user template, not the merge');
      assert.equal(saved.payload.template.event_action, undefined);
      const event = failedEvent(workflowId);
      await postEvent(event);
      const body = (await acceptedAt(url)).body as any;
      assert.equal(body.payload.severity, 'critical', 'replaced');
      assert.equal(body.payload.summary, 'Orders sync failed: HTTP 500 from CRM', "the preset's, kept");
      assert.equal(body.payload.custom_details.team, 'payments', 'added');
      assert.equal(body.payload.custom_details.run, event.runId, 'a template string, rendered, replacing the preset\'s object');
      assert.deepEqual(body.payload.custom_details.workflow, { id: workflowId, name: 'Orders sync', version: 3 }, "the preset's other details, kept");
      assert.deepEqual(body.images, [{ src: 'https://example.com/a.png' }]);
      assert.equal(body.event_action, 'trigger');

      // Discord: an array (embeds) is replaced whole, the rest kept
      const discord = presetConfig('discord', `${workflowId}_d`, { template: { username: 'Orders bot', embeds: [{ title: '{{ workflow.id }} {{ condition }}' }] } });
      await save(discord.config);
      await postEvent(failedEvent(`${workflowId}_d`));
      const d = (await acceptedAt(discord.url)).body as any;
      assert.equal(d.username, 'Orders bot');
      assert.deepEqual(d.embeds, [{ title: `${workflowId}_d failure` }]);
      assert.deepEqual(d.allowed_mentions, { parse: [] });
    });

    it('mergeTemplate: objects merge key by key; anything else replaces', () => {
      assert.deepEqual(mergeTemplate({ a: { b: 1, c: [1, 2] }, d: 'x' }, { a: { c: [3] }, e: null }), { a: { b: 1, c: [3] }, d: 'x', e: null });
      assert.deepEqual(mergeTemplate({ a: { b: 1 } }, { a: 'flat' }), { a: 'flat' });
      assert.deepEqual(mergeTemplate({ a: 1 }, { a: null }), { a: null });
      assert.deepEqual(mergeTemplate([1], { a: 1 }), { a: 1 });
    });
  });

  describe('saving', () => {
    async function refused(config: unknown, path: string): Promise<string> {
      const res = await stack.api('POST', '/api/alerts/config', { config });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      const issue = res.body.error.details.issues.find((i: { path: string }) => i.path === path);
      assert.ok(issue, `an issue at ${path}: ${JSON.stringify(res.body.error)}`);
      return issue.message;
    }

    it('an unknown preset is a 400 naming payload.preset and the presets there are', async () => {
      const { config } = presetConfig('slack', `wf_preset_unknown_${uid()}`);
      const message = await refused({ ...config, payload: { preset: 'hipchat' } }, 'config.payload.preset');
      assert.match(message, /payload\.preset must be one of generic, slack, discord, teams, pagerduty, opsgenie/);
    });

    it("refuses a pagerduty config without its routing key, an opsgenie one without its GenieKey, and a URL-less one whose preset has no URL", async () => {
      const w = `wf_preset_refused_${uid()}`;
      const pd = presetConfig('pagerduty', w).config;
      assert.match(await refused({ ...pd, payload: { preset: 'pagerduty' } }, 'config.payload.template.routing_key'), /routing_key/);
      assert.match(await refused({ ...pd, payload: { preset: 'pagerduty', template: { routing_key: 'short' } } }, 'config.payload.template.routing_key'), /32/);
      const og = presetConfig('opsgenie', w).config;
      assert.match(await refused({ ...og, webhook: { ...og.webhook, headers: {} } }, 'config.webhook.headers.Authorization'), /GenieKey/);
      assert.match(await refused({ ...og, webhook: { ...og.webhook, headers: { authorization: 'Bearer x' } } }, 'config.webhook.headers.authorization'), /GenieKey/);
      const slack = presetConfig('slack', w).config;
      assert.match(await refused({ ...slack, webhook: { headers: {} } }, 'config.webhook.url'), /url is required/);
      assert.match(await refused({ ...slack, webhook: { headers: {} }, payload: { template: null } }, 'config.webhook.url'), /url is required/);
    });

    it('fills in the API URL of pagerduty and opsgenie when webhook.url is omitted', () => {
      const base = { workflowId: 'wf_x', name: 'n', conditions: [{ type: 'failure' }] };
      const pd = alertConfigInputSchema.parse({ ...base, webhook: {}, payload: { preset: 'pagerduty', template: { routing_key: ROUTING_KEY } } });
      assert.equal(pd.webhook.url, 'https://events.pagerduty.com/v2/enqueue');
      const og = alertConfigInputSchema.parse({ ...base, webhook: { headers: { Authorization: GENIE_KEY } }, payload: { preset: 'opsgenie' } });
      assert.equal(og.webhook.url, 'https://api.opsgenie.com/v2/alerts');
      assert.equal(alertConfigInputSchema.parse({ ...base, webhook: { url: 'https://eu.example.com/v2/alerts', headers: { Authorization: GENIE_KEY } }, payload: { preset: 'opsgenie' } }).webhook.url, 'https://eu.example.com/v2/alerts', 'a URL given wins (EU instance)');
    });

    it('keeps the preset, the routing key and the GenieKey sealed: never in clear in the row', async () => {
      const w = `wf_preset_sealed_${uid()}`;
      // (named so that the preset's name could only be in the row as the preset)
      const pd = await save({ ...presetConfig('pagerduty', w).config, name: 'incidents' });
      const og = await save({ ...presetConfig('opsgenie', w).config, name: 'alerts' });
      const rows = await stack.service.db.query<Record<string, unknown>>('SELECT * FROM alert_configs WHERE id = ANY($1)', [[pd.id, og.id]]);
      assert.equal(rows.length, 2);
      const raw = JSON.stringify(rows);
      for (const secret of [ROUTING_KEY, GENIE_KEY.split(' ')[1], 'pagerduty', 'opsgenie']) assert.ok(!raw.includes(secret), `${secret} is not in the row in clear`);
      const listed = await stack.api('GET', `/api/alerts/config/${w}`);
      assert.deepEqual(listed.body.configs.map((c: any) => c.payload.preset).sort(), ['opsgenie', 'pagerduty']);
      // the audit log names the preset, and masks the template and header that hold the keys
      const audit = await stack.api('GET', `/api/alerts/audit?configId=${pd.id}`);
      const changes = audit.body.entries.find((e: any) => e.action === 'config.created').changes;
      assert.deepEqual(changes.find((c: any) => c.field === 'payload.preset'), { field: 'payload.preset', to: 'pagerduty' });
      assert.deepEqual(changes.find((c: any) => c.field === 'payload.template'), { field: 'payload.template', to: '***' });
      assert.ok(!JSON.stringify(audit.body).includes(ROUTING_KEY));
    });
  });

  describe('rendering', () => {
    it('PagerDuty: renders event_action resolve for condition recovered (a later issue sends it) with the trigger\'s dedup_key, which the receiver accepts', async () => {
      const config = { webhook: { url: receivers.url('pagerduty'), headers: {}, timeoutMs: 5000 }, payload: { preset: 'pagerduty' as const, template: { routing_key: ROUTING_KEY } } };
      const event = failedEvent('wf_recovery', { type: 'run.succeeded', error: undefined });
      const render = (condition: string) => JSON.parse(renderAlert(config, buildTemplateContext(event, { id: 'cfg_r', name: 'r' }, condition as never, 'dlv-r')).body);
      const trigger = render('failure');
      const resolve = render('recovered');
      assert.equal(resolve.event_action, 'resolve');
      assert.equal(resolve.dedup_key, trigger.dedup_key);
      for (const body of [trigger, resolve]) {
        const res = await fetch(config.webhook.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        assert.equal(res.status, 202, await res.text());
      }
      // and the stand-in does hold a resolve to what PagerDuty requires of one
      const res = await fetch(config.webhook.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ routing_key: ROUTING_KEY, event_action: 'resolve' }) });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { errors: string[] }).errors.join(), /dedup_key' is required to resolve/);
    });

    const DIGEST: DigestGroup = { key: 'failure|wf_digest', by: ['workflow.id'], condition: 'failure', count: 12, events: [], more: 12, firstAt: '2026-12-02T09:55:00Z', lastAt: '2026-12-02T10:00:00Z', digest: 1 };
    const RECOVERY = { failingSince: '2026-12-02T09:55:00Z', recoveredAt: '2026-12-02T10:00:03Z', failingForMs: 303_000, failures: 12, incidentKey: 'wf_digest' };
    const HELD = { silenced: 1, deduplicated: 0, throttled: 3, repeatSuppressed: 0, since: '2026-12-02T09:56:00Z' };

    it('every preset tells a digest (its count of runs between the first and the last) and a recovery (how long it failed, how often), with what was held back', async () => {
      const event = failedEvent('wf_digest');
      for (const service of Object.keys(PRESETS) as Service[]) {
        const url = receivers.url(service);
        const config = {
          webhook: { url, headers: (service === 'opsgenie' ? { Authorization: GENIE_KEY } : {}) as Record<string, string>, timeoutMs: 5000 },
          payload: { preset: service as never, template: service === 'pagerduty' ? { routing_key: ROUTING_KEY } : null },
        };
        const digest = renderAlert(config, buildTemplateContext(event, { id: 'cfg_d', name: 'd' }, 'failure', 'dlv-d', Date.now(), { group: DIGEST, noise: HELD }));
        assert.match(digest.body, /12 failed runs/, `${service} digest: ${digest.body}`);
        if (service !== 'pagerduty') {
          assert.ok(digest.body.includes(`between ${DIGEST.firstAt} and ${DIGEST.lastAt}`), `${service} digest: ${digest.body}`);
          assert.match(digest.body, /held back since 2026-12-02T09:56:00Z: 3 throttled, 1 silenced/, `${service} digest`);
        }
        const recovery = renderAlert(config, buildTemplateContext(failedEvent('wf_digest', { type: 'run.succeeded', error: undefined }), { id: 'cfg_d', name: 'd' }, 'recovered', 'dlv-r', Date.now(), { recovery: RECOVERY }));
        if (service !== 'pagerduty') assert.match(recovery.body, /recovered after failing for 5m 3s \(12 failures\)/, `${service} recovery: ${recovery.body}`);
        // each is what the receiver accepts
        for (const rendered of [digest, recovery]) {
          const res = await fetch(rendered.url, { method: 'POST', headers: { 'content-type': 'application/json', ...rendered.headers, ...config.webhook.headers }, body: rendered.body });
          assert.ok(res.status < 300, `${service} ${rendered.url}: ${res.status} ${await res.text()}`);
        }
      }
      // generic: the default payload's type and text
      const ctx = buildTemplateContext(event, { id: 'cfg_d', name: 'd' }, 'failure', 'dlv-d', Date.now(), { group: DIGEST, noise: HELD });
      const generic = JSON.parse(renderAlert({ webhook: { url: 'https://hooks.example.com/x', headers: {}, timeoutMs: 1000 }, payload: { preset: 'generic', template: null } }, ctx).body);
      const expected = defaultPayload(ctx) as { type: string; text: string };
      assert.deepEqual([generic.type, generic.text], [expected.type, expected.text]);
    });

    it('Opsgenie: a recovery closes the alert its incident opened (Close Alert by the same alias), which the receiver accepts', async () => {
      const url = receivers.url('opsgenie');
      const config = { webhook: { url, headers: { Authorization: GENIE_KEY }, timeoutMs: 5000 }, payload: { preset: 'opsgenie' as const, template: null } };
      const opened = renderAlert(config, buildTemplateContext(failedEvent('wf_og/close'), { id: 'cfg_og', name: 'og' }, 'failure', 'dlv-og'));
      const closed = renderAlert(config, buildTemplateContext(failedEvent('wf_og/close', { type: 'run.succeeded', error: undefined }), { id: 'cfg_og', name: 'og' }, 'recovered', 'dlv-og-recovered', Date.now(), { recovery: RECOVERY }));
      assert.equal(opened.url, url);
      const closeUrl = new URL(closed.url);
      assert.equal(closeUrl.searchParams.get('identifierType'), 'alias');
      const alias = decodeURIComponent(/\/v2\/alerts\/([^/]+)\/close$/.exec(closeUrl.pathname)![1]);
      assert.equal(alias, JSON.parse(opened.body).alias);
      assert.match(JSON.parse(closed.body).note, /recovered after failing for 5m 3s \(12 failures\)/);
      for (const rendered of [opened, closed]) {
        const res = await fetch(rendered.url, { method: 'POST', headers: { 'content-type': 'application/json', Authorization: GENIE_KEY }, body: rendered.body });
        assert.equal(res.status, 202, await res.text());
      }
    });

    it('generic renders byte for byte the default payload, for every condition and odd events (no name, an empty name or message, no error)', () => {
      const base = { id: 'evt_g', type: 'run.failed', workflowId: 'wf_g', runId: 'run_g' } as ExecutionEvent;
      const events: ExecutionEvent[] = [
        base,
        { ...base, workflow: { name: '' }, error: { message: '' } },
        { ...base, workflow: { name: 'Orders', version: 'v2' }, error: { step: 'send' } },
        failedEvent('wf_g', { data: { list: [1, null, { a: 'b' }] } }),
      ];
      for (const event of events) {
        for (const condition of ['failure', 'success', 'manual_intervention', 'canceled', 'delay', 'test'] as const) {
          const ctx = buildTemplateContext(event, { id: 'cfg_g', name: 'g' }, condition, 'dlv-g');
          const config = { webhook: { url: 'https://hooks.example.com/x', headers: {}, timeoutMs: 1000 }, payload: { preset: 'generic' as const, template: null } };
          assert.equal(renderAlert(config, ctx).body, JSON.stringify(defaultPayload(ctx)), `${condition} ${JSON.stringify(event)}`);
        }
      }
    });

    it("docs/presets.md's sample bodies are what the presets render for the editor's sample event", () => {
      const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'presets.md'), 'utf8');
      const samples = doc.slice(doc.indexOf('## What each preset sends'));
      const ctx = buildTemplateContext(SAMPLE_EVENT as ExecutionEvent, { id: 'cfg_7Hq2cXbVw9LmPa0R', name: 'Orders failures to on-call' }, 'failure', 'dlv-cfg_7Hq2cXbVw9LmPa0R-evt_sample');
      for (const name of Object.keys(PRESETS)) {
        const block = new RegExp(`### ${name}\\n[\\s\\S]*?\`\`\`json\\n([\\s\\S]*?)\\n\`\`\``).exec(samples);
        assert.ok(block, `a sample for ${name}`);
        const template = name === 'pagerduty' ? { routing_key: 'f0e1d2c3b4a5968778695a4b3c2d1e0f' } : null;
        const rendered = renderAlert({ webhook: { url: 'https://hooks.example.com/x', headers: {}, timeoutMs: 1000 }, payload: { preset: name as never, template } }, ctx);
        assert.deepEqual(JSON.parse(block[1]), JSON.parse(rendered.body), name);
      }
    });

    it('every preset template parses and renders for every condition', () => {
      const event = failedEvent('wf_all');
      for (const [name, preset] of Object.entries(PRESETS)) {
        for (const condition of ['failure', 'success', 'manual_intervention', 'canceled', 'delay', 'test', 'recovered']) {
          const config = { webhook: { url: 'https://hooks.example.com/x', headers: {}, timeoutMs: 1000 }, payload: { preset: name as never, template: null } };
          assert.doesNotThrow(() => JSON.parse(renderAlert(config, buildTemplateContext(event, { id: 'cfg', name: 'n' }, condition as never, 'dlv')).body), `${name} ${condition}`);
        }
        assert.ok(preset.label);
      }
    });
  });
});

describe('the preset picker of the config editor (Chromium)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let receivers: PresetReceivers;
  let browser: Browser;
  let page: Page;
  const workflowId = `wf_preset_ui_${uid()}`;

  before(async function () {
    this.timeout(5 * 60_000);
    execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    [stack, receivers] = await Promise.all([useStack(), PresetReceivers.start()]);
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (err) => console.error('[browser]', err));
    await page.goto(`${stack.apiUrl}/`);
    await page.getByLabel('API token').fill(stack.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Project overview' }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await receivers?.close();
  });

  it('creates a PagerDuty config from the picker: its key field, the preview of the preset, a delivered test alert, and the form read back', async () => {
    const url = receivers.url('pagerduty');
    await page.goto(`${stack.apiUrl}/#/w/${workflowId}/new`);
    await page.getByLabel('Name', { exact: true }).fill('Orders to PagerDuty');
    await page.getByLabel('Receiver preset').selectOption('pagerduty');
    // the API's URL stands in for an empty field (here the stand-in's is typed: tests reach 127.0.0.1 only), and the preview shows the preset's body
    assert.equal(await page.getByLabel(/Webhook URL/).getAttribute('placeholder'), 'https://events.pagerduty.com/v2/enqueue');
    assert.match(await page.locator('label[for="url"]').innerText(), /\(optional\)/);
    await page.getByLabel(/Webhook URL/).fill(url);
    await page.getByTestId('preview-url').filter({ hasText: url }).waitFor();
    await page.getByTestId('preview-body').filter({ hasText: '"event_action": "trigger"' }).waitFor();

    // without its key, the save is refused beside the key field
    await page.getByRole('button', { name: 'Create alert' }).click();
    await page.locator('#routing-key-error').waitFor();
    assert.match(await page.locator('#routing-key-error').innerText(), /routing_key/);
    assert.equal(await page.getByLabel(/PagerDuty integration key/).getAttribute('aria-invalid'), 'true');

    await page.getByLabel(/PagerDuty integration key/).fill(ROUTING_KEY);
    await page.getByLabel('My own template, merged over the preset').check();
    await page.getByLabel(/Payload template/).fill(JSON.stringify({ payload: { severity: 'critical' } }));
    await page.getByTestId('preview-body').filter({ hasText: '"severity": "critical"' }).waitFor();
    await page.getByRole('button', { name: 'Create alert' }).click();
    await page.getByTestId('secret').waitFor();

    const [stored] = (await stack.api('GET', `/api/alerts/config/${workflowId}`)).body.configs;
    assert.deepEqual(stored.payload, { preset: 'pagerduty', template: { payload: { severity: 'critical' }, routing_key: ROUTING_KEY } });
    assert.equal(stored.webhook.url, url);

    await page.getByRole('button', { name: 'Send test alert' }).click();
    const result = page.locator('.test-result');
    await result.waitFor({ timeout: 30_000 });
    assert.equal(await result.getAttribute('data-outcome'), 'delivered');
    const [request] = await receivers.waitFor(url);
    assert.deepEqual(request.problems, []);
    assert.equal((request.body as any).payload.severity, 'critical');

    await page.reload();
    await page.getByLabel('Name', { exact: true }).waitFor();
    assert.equal(await page.getByLabel('Receiver preset').inputValue(), 'pagerduty');
    assert.equal(await page.getByLabel(/PagerDuty integration key/).inputValue(), ROUTING_KEY);
    assert.deepEqual(JSON.parse(await page.getByLabel(/Payload template/).inputValue()), { payload: { severity: 'critical' } }, 'the key has its own field, not the template');
  });

  it('keeps an Opsgenie key in its own field, sent as the Authorization header', async () => {
    const url = receivers.url('opsgenie');
    await page.goto(`${stack.apiUrl}/#/w/${workflowId}/new`);
    await page.getByLabel('Name', { exact: true }).fill('Orders to Opsgenie');
    await page.getByLabel('Receiver preset').selectOption('opsgenie');
    await page.getByLabel('Opsgenie API key').fill('abc123');
    await page.getByLabel(/Webhook URL/).fill(url);
    // a customisation starts from a small example, or from the preset's whole template (GET /api/alerts/presets)
    await page.getByLabel('My own template, merged over the preset').check();
    assert.deepEqual(JSON.parse(await page.getByLabel(/Payload template/).inputValue()), { priority: 'P1', tags: ['meshhook', '{{ condition }}', 'payments'] });
    await page.getByRole('button', { name: 'Start from the whole preset template' }).click();
    // (a string: the test's TypeScript has no DOM types)
    await page.waitForFunction(`document.querySelector('#template').value.includes('"alias"')`);
    const presets = (await stack.api('GET', '/api/alerts/presets')).body.presets;
    assert.deepEqual(JSON.parse(await page.getByLabel(/Payload template/).inputValue()), presets.find((p: any) => p.name === 'opsgenie').template);
    await page.getByLabel('The Opsgenie preset as it is').check();
    await page.getByRole('button', { name: 'Create alert' }).click();
    await page.getByTestId('secret').waitFor();
    const stored = (await stack.api('GET', `/api/alerts/config/${workflowId}`)).body.configs.find((c: any) => c.name === 'Orders to Opsgenie');
    assert.deepEqual(stored.webhook.headers, { Authorization: 'GenieKey abc123' });
    assert.deepEqual(stored.payload, { preset: 'opsgenie', template: null });
    await page.getByRole('button', { name: 'Send test alert' }).click();
    await page.locator('.test-result[data-outcome="delivered"]').waitFor({ timeout: 30_000 });
    assert.deepEqual((await receivers.waitFor(url))[0].problems, []);
    await page.reload();
    await page.getByLabel('Opsgenie API key').waitFor();
    assert.equal(await page.getByLabel('Opsgenie API key').inputValue(), 'abc123');
    assert.equal(await page.getByLabel('Header 1 name').count(), 0, 'the key is not shown again as a header');
  });
});
