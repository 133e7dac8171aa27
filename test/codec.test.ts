import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { publishExecutionEvent } from '../index';
import { AlertsPayloadCodec, ENCODING_ENCRYPTED, METADATA_KEY_ID, METADATA_PROJECT } from '../lib/codec';
import { newKeySpec, parseKeyring, type Keyring } from '../lib/crypto';
import { eventWorkflowId } from '../lib/delivery-ids';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * Encrypted Temporal payloads (lib/codec.ts) and the codec endpoint of the Web UI
 * (api/routes/codec.ts), on the shared embedded stack: the raw history that Temporal stores is read
 * with a client that has no codec, and the codec endpoint is called the way the Web UI calls it.
 */

const uid = () => randomBytes(5).toString('hex');
const FAST_RETRY = { maxAttempts: 4, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };

const LOCAL_ACTIVITY_MARKER_FIELDS = ['activity_id', 'activity_type', 'attempt', 'backoff', 'complete_time', 'original_schedule_time', 'seq'];

type JsonPayload = { metadata: Record<string, string>; data: string };
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))])),
  data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')),
});
const jsonPayload = (value: unknown): JsonPayload => ({
  metadata: { encoding: Buffer.from('json/plain').toString('base64') },
  data: Buffer.from(JSON.stringify(value)).toString('base64'),
});
const metadataText = (p: JsonPayload, key: string) => (p.metadata[key] === undefined ? undefined : Buffer.from(p.metadata[key], 'base64').toString('utf8'));

/** Every payload in a history (search attributes are plain by design: Temporal indexes them). */
function payloadsIn(value: unknown, path = ''): { path: string; payload: temporal.api.common.v1.IPayload & { metadata: Record<string, Uint8Array> } }[] {
  const isPayload = (v: object): v is temporal.api.common.v1.Payload => 'metadata' in v && 'data' in v && v.data instanceof Uint8Array;
  if (value !== null && typeof value === 'object' && isPayload(value)) return [{ path, payload: value }];
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [];
  return Object.entries(value).flatMap(([key, child]) => (key === 'searchAttributes' ? [] : payloadsIn(child, path ? `${path}.${key}` : key)));
}

describe('encrypted Temporal payloads and the codec endpoint', function () {
  let stack: TestStack;
  let receiver: Receiver;
  /** a client with no codec: it sees what Temporal stores */
  let plain: Client;
  let connection: Connection;
  const namespace = 'default';

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
    connection = await Connection.connect({ address: stack.service.temporalAddress });
    plain = new Client({ connection, namespace });
  });

  after(async () => {
    await receiver?.close();
    await connection?.close();
  });

  async function rawHistory(workflowId: string): Promise<temporal.api.history.v1.History> {
    const events: temporal.api.history.v1.IHistoryEvent[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await plain.workflowService.getWorkflowExecutionHistory({ namespace, execution: { workflowId }, nextPageToken });
      events.push(...(page.history?.events ?? []));
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    return temporal.api.history.v1.History.create({ events: events as temporal.api.history.v1.HistoryEvent[] });
  }

  const codecCall = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }).then(async (res) => ({
      status: res.status,
      headers: res.headers,
      text: await res.text(),
    }));
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  /** One delivery retried once (503, then 200) and one refused (400), both with secrets in every field. */
  const markers = {
    url: `url-marker-${uid()}`,
    header: `header-marker-${uid()}`,
    template: `template-marker-${uid()}`,
    data: `data-marker-${uid()}`,
    error: `error-marker-${uid()}`,
  };
  let histories: { workflowId: string; history: temporal.api.history.v1.History }[] = [];
  let okDelivery = '';

  before(async function () {
    this.timeout(120_000);
    const workflowId = `wf_codec_${uid()}`;
    const okPath = `/${markers.url}-ok`;
    const refusedPath = `/${markers.url}-refused`;
    // two 503s: the first attempt (inside the workflow task) and the first activity attempt, whose failure Temporal records
    receiver.on(okPath, (n) => (n <= 2 ? { status: 503 } : { status: 200 }));
    // a 503 (the first attempt), then a 400 from the activity attempt: an activity failure Temporal records
    receiver.on(refusedPath, (n) => (n === 1 ? { status: 503 } : { status: 400 }));
    const configFor = (path: string) => ({
      config: {
        workflowId,
        name: 'codec',
        conditions: [{ type: 'failure' }],
        webhook: { url: `${receiver.url}${path}?q={{ data.secret }}`, headers: { 'X-Codec-Secret': markers.header } },
        payload: { template: { text: `${markers.template} {{ error.message }} {{ data.secret }}` } },
        retry: FAST_RETRY,
      },
    });
    for (const path of [okPath, refusedPath]) assert.equal((await stack.api('POST', '/api/alerts/config', configFor(path))).status, 201);
    const sent = await stack.api('POST', '/api/events', {
      id: `evt_${uid()}`,
      type: 'run.failed',
      workflowId,
      runId: `run_${uid()}`,
      error: { message: markers.error },
      data: { secret: markers.data },
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const deliveries: { deliveryId: string }[] = sent.body.deliveries;
    assert.equal(deliveries.length, 2);
    const results = await Promise.all(deliveries.map((d) => stack.service.temporal.client.workflow.getHandle(d.deliveryId).result()));
    assert.deepEqual(results.map((r) => r.status).sort(), ['delivered', 'failed']);
    okDelivery = deliveries[results.findIndex((r) => r.status === 'delivered')].deliveryId;
    assert.equal(receiver.at(okPath).length, 3, 'two attempts were answered 503 and retried');

    // MeshHook's way in through its own Temporal client: ProcessExecutionEvent's history
    const event = { id: `evt_${uid()}`, type: 'run.succeeded' as const, workflowId: `wf_codec_pub_${uid()}`, runId: 'run_1', data: { secret: markers.data } };
    await publishExecutionEvent(stack.service.temporal.client, event, { projectId: 'default', taskQueue: stack.service.env.TEMPORAL_TASK_QUEUE });

    histories = await Promise.all(
      [...deliveries.map((d) => d.deliveryId), eventWorkflowId('default', event.id)].map(async (id) => ({ workflowId: id, history: await rawHistory(id) })),
    );
  });

  const receiverHost = () => new URL(receiver.url).host;
  const forbiddenTexts = () => [...Object.values(markers), receiverHost(), 'HTTP 503', 'HTTP 400', 'retrying in'];
  const allPayloads = () => histories.flatMap(({ history }) => payloadsIn(history).map(({ payload }) => toJson(payload)));

  describe('what Temporal stores', () => {
    it('holds no webhook payload, URL, header value, event data or error text in clear, in any payload or anywhere else in the history', () => {
      for (const { workflowId, history } of histories) {
        const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
        for (const secret of forbiddenTexts()) {
          assert.equal(bytes.includes(secret), false, `${workflowId}: "${secret}" is in the raw history`);
          // and not in any payload's bytes read as text, nor base64 of it
          assert.equal(bytes.includes(Buffer.from(secret).toString('base64').slice(0, 12)), false, `${workflowId}: base64 of "${secret}"`);
        }
      }
    });

    it('stores every payload as an AES-256-GCM envelope with its key id and its project (results, summaries and failures too)', () => {
      for (const { workflowId, history } of histories) {
        const found = payloadsIn(history);
        assert.ok(found.length >= 4, `${workflowId}: ${found.length} payloads`);
        for (const { path, payload } of found) {
          if (/markerRecordedEventAttributes\.details\.data\./.test(path)) {
            // a local activity's bookkeeping, written by the SDK's core after the codec: its type, attempt and times, nothing of ours
            assert.deepEqual(Object.keys(JSON.parse(text(payload.data))).sort(), LOCAL_ACTIVITY_MARKER_FIELDS, `${workflowId} ${path}`);
            continue;
          }
          assert.equal(text(payload.metadata.encoding), ENCODING_ENCRYPTED, `${workflowId} ${path}`);
          assert.equal(text(payload.metadata[METADATA_KEY_ID]), stack.service.keyring.primaryId, `${workflowId} ${path}`);
          assert.equal(text(payload.metadata[METADATA_PROJECT]), 'default', `${workflowId} ${path}: tagged with its project`);
          assert.deepEqual(Object.keys(payload.metadata).sort(), ['encoding', METADATA_KEY_ID, METADATA_PROJECT].sort(), `${workflowId} ${path}: nothing else in clear`);
        }
      }
    });

    it('keeps failure messages in an encrypted payload ("Encoded failure")', () => {
      const failures = histories.flatMap(({ history }) =>
        (history.events ?? []).flatMap((e) => [e.activityTaskFailedEventAttributes?.failure, e.activityTaskStartedEventAttributes?.lastFailure].filter((f) => f)),
      );
      assert.ok(failures.length >= 2, 'the second 503 (last failure of a retried activity attempt) and the 400');
      for (const failure of failures) {
        assert.equal(failure!.message, 'Encoded failure');
        assert.equal(failure!.stackTrace, '');
        assert.equal(text(failure!.encodedAttributes?.metadata?.encoding), ENCODING_ENCRYPTED);
      }
    });

    it('still shows the decrypted failure in the delivery timeline of the API', async () => {
      const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(okDelivery)}`);
      assert.equal(res.status, 200);
      const details = res.body.timeline.map((e: { detail?: string }) => e.detail ?? '').join('\n');
      assert.match(details, /previous attempt: HTTP 503; retrying in \d+ ms/);
    });
  });

  describe('POST /codec/decode', () => {
    it("decodes a delivery's history for a token of its project, and what it decodes holds every secret", async () => {
      const payloads = allPayloads();
      const res = await codecCall('/codec/decode', { payloads }, { ...bearer(stack.token), 'x-namespace': namespace });
      assert.equal(res.status, 200, res.text);
      const decoded: JsonPayload[] = JSON.parse(res.text).payloads;
      assert.equal(decoded.length, payloads.length);
      assert.ok(decoded.every((p) => metadataText(p, 'encoding') !== ENCODING_ENCRYPTED), 'nothing left encrypted');
      const clear = decoded.map((p) => Buffer.from(p.data, 'base64').toString('utf8')).join('\n');
      for (const secret of forbiddenTexts()) assert.ok(clear.includes(secret), `the decoded history holds "${secret}"`);
      assert.equal(res.headers.get('cache-control'), 'no-store');
    });

    it('takes the token in its path too, as the Web UI is set up to send it', async () => {
      const res = await codecCall(`/codec/${encodeURIComponent(stack.token)}/decode`, { payloads: allPayloads().slice(0, 3) }, { 'x-namespace': namespace });
      assert.equal(res.status, 200, res.text);
      assert.equal((await codecCall(`/codec/mha_not-a-token/decode`, { payloads: [] })).status, 401);
    });

    it("refuses another project's token with a JSON error and decodes nothing", async () => {
      const other = await stack.tokenFor(`codec-other-${uid()}`);
      for (const path of ['/codec/decode', `/codec/${other}/decode`]) {
        const res = await codecCall(path, { payloads: allPayloads() }, bearer(other));
        assert.equal(res.status, 403, res.text);
        const body = JSON.parse(res.text);
        assert.equal(body.error.code, 'forbidden');
        assert.match(body.error.message, /belongs to another project/);
        for (const secret of forbiddenTexts()) assert.equal(res.text.includes(secret), false, `"${secret}" in the refusal`);
        assert.equal(body.payloads, undefined);
      }
    });

    it('refuses without a token, or with an unknown one (401)', async () => {
      const payloads = allPayloads().slice(0, 2);
      for (const headers of [{}, bearer('mha_unknown-token-000000000000'), { authorization: 'Basic abc' }]) {
        const res = await codecCall('/codec/decode', { payloads }, headers);
        assert.equal(res.status, 401, res.text);
        assert.equal(JSON.parse(res.text).error.code, 'unauthorized');
      }
    });

    it('decodes no untagged payload for any token, and no payload whose project tag was changed', async () => {
      const codec = new AlertsPayloadCodec(stack.service.keyring);
      const [untagged] = await codec.encode([fromJson(jsonPayload({ hello: 'no project' }))]);
      assert.equal(untagged.metadata?.[METADATA_PROJECT], undefined);
      const refused = await codecCall('/codec/decode', { payloads: [toJson(untagged)] }, bearer(stack.token));
      assert.equal(refused.status, 403, refused.text);
      assert.match(JSON.parse(refused.text).error.message, /not tagged with a project/);

      // the tag is authenticated: moved to another project, the envelope no longer decrypts
      const otherProject = `codec-moved-${uid()}`;
      const moved = { ...allPayloads()[0] };
      moved.metadata = { ...moved.metadata, [METADATA_PROJECT]: Buffer.from(otherProject).toString('base64') };
      const res = await codecCall('/codec/decode', { payloads: [moved] }, bearer(await stack.tokenFor(otherProject)));
      assert.equal(res.status, 400, res.text);
      assert.match(JSON.parse(res.text).error.message, /could not be decrypted/);
      assert.equal(res.text.includes(markers.data), false);
    });

    it('answers bad requests with a 4xx JSON error', async () => {
      const cases: [unknown, Record<string, string>, number][] = [
        [{ payloads: 'x' }, {}, 400],
        [{ payloads: [{ data: 'not base64!' }] }, {}, 400],
        [{ payloads: [], extra: 1 }, {}, 400],
        [{ payloads: [] }, { 'x-namespace': 'another-namespace' }, 400],
      ];
      for (const [body, headers, status] of cases) {
        const res = await codecCall('/codec/decode', body, { ...bearer(stack.token), ...headers });
        assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
        assert.ok(JSON.parse(res.text).error.message);
      }
      const big = await codecCall('/codec/decode', { payloads: [{ data: 'A'.repeat(5 * 1024 * 1024) }] }, bearer(stack.token));
      assert.equal(big.status, 413);
      const get = await fetch(`${stack.apiUrl}/codec/decode`, { headers: bearer(stack.token) });
      assert.ok(get.status === 405, `GET: ${get.status}`);
    });
  });

  describe('the temporal CLI', () => {
    it('reads a delivery through the codec endpoint with --codec-endpoint and --codec-auth', async function () {
      this.timeout(60_000);
      const cli = await resolveTemporalCli({ cliPath: process.env.TEMPORAL_CLI_PATH });
      const show = (...extra: string[]) =>
        promisify(execFile)(cli, ['workflow', 'show', '--workflow-id', okDelivery, '--address', stack.service.temporalAddress, '--namespace', namespace, '--output', 'json', ...extra], {
          maxBuffer: 16 * 1024 * 1024,
        }).then(({ stdout }) => stdout);
      // its JSON output keeps each payload's data in base64
      const payloadTexts = (output: string) => [...output.matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1], 'base64').toString('utf8')).join('\n');
      const withToken = payloadTexts(await show('--codec-endpoint', `${stack.apiUrl}/codec`, '--codec-auth', `Bearer ${stack.token}`));
      for (const secret of [markers.data, markers.error, markers.template, markers.url, markers.header]) assert.ok(withToken.includes(secret), `the CLI shows "${secret}"`);
    });
  });

  describe('POST /codec/encode', () => {
    it('encrypts for the caller’s project, and decode gives back the same payload', async () => {
      const original = jsonPayload({ hello: 'round-trip', n: 1 });
      const encoded = await codecCall('/codec/encode', { payloads: [original] }, bearer(stack.token));
      assert.equal(encoded.status, 200, encoded.text);
      const [envelope]: JsonPayload[] = JSON.parse(encoded.text).payloads;
      assert.equal(metadataText(envelope, 'encoding'), ENCODING_ENCRYPTED);
      assert.equal(metadataText(envelope, METADATA_PROJECT), 'default');
      assert.equal(metadataText(envelope, METADATA_KEY_ID), stack.service.keyring.primaryId);
      assert.equal(Buffer.from(envelope.data, 'base64').includes('round-trip'), false);

      const decoded = await codecCall('/codec/decode', { payloads: [envelope] }, bearer(stack.token));
      assert.equal(decoded.status, 200, decoded.text);
      assert.deepEqual(JSON.parse(decoded.text).payloads, [original]);
      // what the endpoint encodes is what the workers read
      const [viaWorkerCodec] = await new AlertsPayloadCodec(stack.service.keyring).decode([fromJson(envelope)]);
      assert.deepEqual(toJson(viaWorkerCodec), original);
      // and another project cannot read it back
      const other = await stack.tokenFor(`codec-other-${uid()}`);
      assert.equal((await codecCall('/codec/decode', { payloads: [envelope] }, bearer(other))).status, 403);
    });

    it('refuses to encode a payload that names another project', async () => {
      const res = await codecCall('/codec/encode', { payloads: [jsonPayload({ projectId: 'someone-else', x: 1 })] }, bearer(stack.token));
      assert.equal(res.status, 403, res.text);
      assert.equal(JSON.parse(res.text).error.code, 'forbidden');
      // the same key written with a JSON escape names the same project
      const escaped = { metadata: jsonPayload(null).metadata, data: Buffer.from('{"proj\\u0065ctId":"someone-else","x":1}').toString('base64') };
      const again = await codecCall('/codec/encode', { payloads: [escaped] }, bearer(stack.token));
      assert.equal(again.status, 403, again.text);
    });

    it('refuses, never re-tags, a payload whose metadata names another project, and seals nothing of that request', async () => {
      const other = `codec-other-${uid()}`;
      const b64 = (value: string) => Buffer.from(value).toString('base64');
      const [othersEnvelope] = new AlertsPayloadCodec(stack.service.keyring).encodeFor(other, [fromJson(jsonPayload({ secret: 'theirs' }))]);
      const taggedPlain = (tag: string, encoding = 'json/plain') => ({ ...jsonPayload({ x: 1 }), metadata: { encoding: b64(encoding), [METADATA_PROJECT]: b64(tag) } });
      const cases: [string, JsonPayload][] = [
        ["another project's envelope", toJson(othersEnvelope)],
        ['a JSON payload tagged with another project', taggedPlain(other)],
        ['a binary payload tagged with another project', taggedPlain(other, 'binary/plain')],
        ['a payload with an empty project tag', taggedPlain('')],
        ['a payload whose tag differs only in case', taggedPlain('DEFAULT')],
      ];
      for (const [what, payload] of cases) {
        // beside a payload that alone would be encoded: the whole request is refused
        const res = await codecCall('/codec/encode', { payloads: [jsonPayload({ fine: true }), payload] }, bearer(stack.token));
        assert.equal(res.status, 403, `${what}: ${res.text}`);
        const { error } = JSON.parse(res.text);
        assert.equal(error.code, 'forbidden', what);
        assert.match(error.message, /^payloads\[1\] is tagged with another project/, what);
        assert.equal(JSON.parse(res.text).payloads, undefined, what);
      }
      // and the path-token route answers the same
      const viaPath = await codecCall(`/codec/${stack.token}/encode`, { payloads: [toJson(othersEnvelope)] });
      assert.equal(viaPath.status, 403, viaPath.text);
    });

    it('refuses to seal an envelope again, even its own project’s (400), and still encodes a payload tagged with its own project', async () => {
      const [own] = new AlertsPayloadCodec(stack.service.keyring).encodeFor('default', [fromJson(jsonPayload({ n: 1 }))]);
      const untagged = (await new AlertsPayloadCodec(stack.service.keyring).encode([fromJson(jsonPayload({ n: 2 }))]))[0];
      for (const envelope of [own, untagged]) {
        const res = await codecCall('/codec/encode', { payloads: [toJson(envelope)] }, bearer(stack.token));
        assert.equal(res.status, 400, res.text);
        assert.match(JSON.parse(res.text).error.message, /^payloads\[0\] is already encrypted/);
      }
      const ownTag = { ...jsonPayload({ n: 3 }), metadata: { encoding: Buffer.from('json/plain').toString('base64'), [METADATA_PROJECT]: Buffer.from('default').toString('base64') } };
      const res = await codecCall('/codec/encode', { payloads: [ownTag] }, bearer(stack.token));
      assert.equal(res.status, 200, res.text);
      assert.equal(metadataText(JSON.parse(res.text).payloads[0], METADATA_PROJECT), 'default');
    });
  });

  describe('the Web UI', () => {
    const uiOrigin = () => new URL(stack.service.temporalUiUrl!).origin;
    const preflight = (path: string, origin: string) =>
      fetch(`${stack.apiUrl}${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' },
      });

    it('is started with this API as its codec endpoint, with a token of its own in the path (hardening item 12)', async () => {
      const settings = (await fetch(`${stack.service.temporalUiUrl}/api/v1/settings`).then((r) => r.json())) as { Codec?: { Endpoint?: string } };
      const endpoint = settings.Codec?.Endpoint ?? '';
      assert.ok(endpoint.startsWith(`${stack.apiUrl}/codec/`), JSON.stringify(settings.Codec));
      // the endpoint as the UI calls it decodes (here: an empty request)
      const res = await codecCall(`${endpoint.slice(stack.apiUrl.length)}/decode`, { payloads: [] });
      assert.equal(res.status, 200, res.text);
    });

    it("answers the CORS preflight from the UI's origin (both loopback names), and refuses other origins", async () => {
      const localhostOrigin = uiOrigin().replace('127.0.0.1', 'localhost');
      for (const origin of [uiOrigin(), localhostOrigin]) {
        for (const path of ['/codec/decode', '/codec/encode', `/codec/${stack.token}/decode`]) {
          const res = await preflight(path, origin);
          assert.equal(res.status, 204, `${origin} ${path}`);
          assert.equal(res.headers.get('access-control-allow-origin'), origin);
          assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
          const allowed = (res.headers.get('access-control-allow-headers') ?? '').split(',').map((h) => h.trim());
          for (const header of ['content-type', 'x-namespace', 'authorization']) assert.ok(allowed.includes(header), `${header} in ${allowed}`);
          assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
          assert.match(res.headers.get('vary') ?? '', /Origin/i);
        }
      }
      for (const origin of ['http://evil.example', `http://127.0.0.1:${new URL(stack.apiUrl).port}`, 'null']) {
        const res = await preflight('/codec/decode', origin);
        assert.equal(res.status, 403, origin);
        assert.equal(res.headers.get('access-control-allow-origin'), null, origin);
      }
    });

    it("decodes for the UI's origin with CORS headers, and refuses another origin even with a valid token", async () => {
      const payloads = allPayloads().slice(0, 2);
      const ok = await codecCall('/codec/decode', { payloads }, { ...bearer(stack.token), origin: uiOrigin(), 'x-namespace': namespace });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.headers.get('access-control-allow-origin'), uiOrigin());
      const evil = await codecCall('/codec/decode', { payloads }, { ...bearer(stack.token), origin: 'http://evil.example' });
      assert.equal(evil.status, 403);
      for (const secret of forbiddenTexts()) assert.equal(evil.text.includes(secret), false);
    });
  });

  describe('key rotation', () => {
    const specOf = (keyring: Keyring) => [...keyring.keys].map(([id, key]) => `${id}:${key.toString('base64')}`).join(',');

    it('decodes payloads encrypted with an old key once a new key is put first, and encrypts new ones with the new key', async () => {
      const stored = histories[0].history;
      const envelopes = payloadsIn(stored).map(({ payload }) => payload as Payload);
      const before = await new AlertsPayloadCodec(stack.service.keyring).decode(envelopes);

      const rotated = parseKeyring(`${newKeySpec('k-rotated')},${specOf(stack.service.keyring)}`);
      assert.equal(rotated.primaryId, 'k-rotated');
      const codec = new AlertsPayloadCodec(rotated);
      const after = await codec.decode(envelopes);
      assert.deepEqual(after.map(toJson), before.map(toJson));
      assert.ok(after.map((p) => text(p.data)).join('').includes(markers.data));

      const [fresh] = await codec.encode([fromJson(jsonPayload({ projectId: 'default', x: 'after rotation' }))]);
      assert.equal(text(fresh.metadata?.[METADATA_KEY_ID]), 'k-rotated');
      assert.equal(text(fresh.metadata?.[METADATA_PROJECT]), 'default');
      assert.deepEqual(toJson((await codec.decode([fresh]))[0]), jsonPayload({ projectId: 'default', x: 'after rotation' }));
      // a keyring without the new key cannot read it, and says which key is missing
      await assert.rejects(new AlertsPayloadCodec(stack.service.keyring).decode([fresh]), /"k-rotated" is not in the keyring/);
    });
  });
});
