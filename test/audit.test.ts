import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { configChanges, maskUrl } from '../lib/audit';
import { hashToken } from '../lib/crypto';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The audit log of config changes (alert_audit_log, GET /api/alerts/audit) through real HTTP on the
 * shared stack: who (the token's id), when, what changed, and never a secret, a URL path, a header
 * value or a payload template, in the answers or in the raw rows.
 */

const uid = () => randomBytes(4).toString('hex');
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

describe('audit log of config changes', function () {
  let stack: TestStack;
  let tokenId: string;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    const [row] = await stack.service.db.query<{ id: string }>('SELECT id FROM api_tokens WHERE token_hash = $1', [hashToken(stack.token)]);
    tokenId = row.id;
  });

  const auditOf = async (configId: string, token?: string) => {
    const res = await stack.api('GET', `/api/alerts/audit?configId=${encodeURIComponent(configId)}`, undefined, token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.entries as { id: string; action: string; configId: string; workflowId: string; tokenId: string | null; changes: { field: string; from?: unknown; to?: unknown }[]; createdAt: string }[];
  };

  it('records create, update, secret rotation and delete with the token, the time and the changed fields, masking URL, header values and secrets', async () => {
    const marker = uid(); // in the URL and header values only
    const workflowId = `wf_audit_${uid()}`;
    const url = `https://user-${marker}:pass-${marker}@hooks.example.com/private-${marker}/{{ workflow.id }}?key=q-${marker}`;
    const headerValue = `Bearer hv-${marker}`;
    const firstSecret = newSecret();
    const created = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'audited', conditions: [{ type: 'failure' }], webhook: { url, headers: { Authorization: headerValue } } },
      secret: firstSecret,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const configId = created.body.config.id;

    const secondSecret = newSecret();
    const updated = await stack.api('POST', '/api/alerts/config', {
      config: {
        id: configId,
        workflowId,
        name: 'audited, renamed',
        enabled: false,
        conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 60 }],
        webhook: { url: `https://hooks.example.com/other-${marker}`, headers: { Authorization: `Bearer hv2-${marker}`, 'X-Team': `team-${marker}` }, timeoutMs: 5000 },
        retry: { maxAttempts: 3 },
      },
      secret: secondSecret,
    });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    const rotated = await stack.api('POST', `/api/alerts/config/by-id/${configId}/rotate-secret`, { graceSeconds: 60 });
    assert.equal(rotated.status, 200);
    const before = Date.now();
    assert.equal((await stack.api('DELETE', `/api/alerts/config/by-id/${configId}`)).status, 204);

    const entries = await auditOf(configId);
    assert.deepEqual(entries.map((e) => e.action), ['config.deleted', 'config.secret_rotated', 'config.updated', 'config.created'], 'newest first');
    for (const entry of entries) {
      assert.equal(entry.tokenId, tokenId, 'who: the id of the token that made the change');
      assert.equal(entry.configId, configId);
      assert.equal(entry.workflowId, workflowId);
      assert.ok(Math.abs(Date.parse(entry.createdAt) - before) < 60_000, `when: ${entry.createdAt}`);
    }
    const [deleted, rotation, update, create] = entries;
    const byField = (entry: (typeof entries)[number]) => Object.fromEntries(entry.changes.map((c) => [c.field, c]));

    const c = byField(create);
    assert.deepEqual(c.name, { field: 'name', to: 'audited' });
    assert.deepEqual(c['webhook.url'], { field: 'webhook.url', to: 'https://hooks.example.com/***' });
    assert.deepEqual(c['webhook.headers.Authorization'], { field: 'webhook.headers.Authorization', to: '***' });
    assert.deepEqual(c.secret, { field: 'secret', to: '***' });
    assert.deepEqual(c['retry.maxAttempts'], { field: 'retry.maxAttempts', to: 8 });

    const u = byField(update);
    assert.deepEqual(u.name, { field: 'name', from: 'audited', to: 'audited, renamed' });
    assert.deepEqual(u.enabled, { field: 'enabled', from: true, to: false });
    assert.deepEqual(u.conditions, { field: 'conditions', from: [{ type: 'failure' }], to: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 60 }] });
    assert.deepEqual(u['webhook.url'], { field: 'webhook.url', from: 'https://hooks.example.com/***', to: 'https://hooks.example.com/***' }, 'a changed URL is listed, masked');
    assert.deepEqual(u['webhook.headers.Authorization'], { field: 'webhook.headers.Authorization', from: '***', to: '***' });
    assert.deepEqual(u['webhook.headers.X-Team'], { field: 'webhook.headers.X-Team', to: '***' });
    assert.deepEqual(u['webhook.timeoutMs'], { field: 'webhook.timeoutMs', from: 10_000, to: 5000 });
    assert.deepEqual(u['retry.maxAttempts'], { field: 'retry.maxAttempts', from: 8, to: 3 });
    assert.deepEqual(u.secret, { field: 'secret', from: '***', to: '***' });
    assert.equal(u.workflowId, undefined, 'unchanged fields are not listed');
    assert.equal(u['retry.initialIntervalMs'], undefined);

    assert.deepEqual(byField(rotation).secret, { field: 'secret', from: '***', to: '***' });
    assert.equal(byField(rotation).previousSecretExpiresAt.to, rotated.body.previousSecretExpiresAt);
    assert.deepEqual(byField(deleted).name, { field: 'name', from: 'audited, renamed' });
    assert.deepEqual(byField(deleted)['webhook.url'], { field: 'webhook.url', from: 'https://hooks.example.com/***' });

    // never in clear: not in the answer, not in the table
    const answer = JSON.stringify(entries);
    const rows = JSON.stringify(await stack.service.db.query('SELECT * FROM alert_audit_log WHERE config_id = $1', [configId]));
    for (const hidden of [marker, firstSecret.slice(6), secondSecret.slice(6), rotated.body.secret.slice(6)]) {
      const what = hidden === marker ? 'a URL part or header value' : 'a secret';
      assert.ok(!answer.includes(hidden), `the answer shows ${what}`);
      assert.ok(!rows.includes(hidden), `the audit rows hold ${what}`);
    }
  });

  it('lists a changed payload template as "***" (null: the default payload), and never holds the template in the answer or the rows', async () => {
    const marker = uid();
    const workflowId = `wf_audit_tpl_${uid()}`;
    const base = { workflowId, name: 'templated', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/a', headers: { 'X-Api-Key': `key-${marker}` } } };
    const created = await stack.api('POST', '/api/alerts/config', { config: { ...base, payload: { template: { text: 'hi', token: `tpl-${marker}` } } } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const configId = created.body.config.id;
    const save = async (config: Record<string, unknown>) => {
      const res = await stack.api('POST', '/api/alerts/config', { config: { id: configId, ...config } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    await save({ ...base, payload: { template: { text: 'hi', token: `tpl2-${marker}` } } });
    await save({ ...base, payload: { template: { text: 'hi', token: `tpl2-${marker}` } }, name: 'renamed only' });
    await save({ ...base, name: 'renamed only', payload: { template: null } });
    await save({ ...base, name: 'renamed only', payload: { template: null }, webhook: { ...base.webhook, headers: { 'X-Api-Key': `key2-${marker}` } } });

    const [header, toDefault, renamed, changed, create] = await auditOf(configId);
    const templateChange = (entry: { changes: { field: string }[] }) => entry.changes.find((c) => c.field === 'payload.template');
    assert.deepEqual(templateChange(create), { field: 'payload.template', to: '***' });
    assert.deepEqual(templateChange(changed), { field: 'payload.template', from: '***', to: '***' }, 'a changed template is listed, masked');
    assert.equal(templateChange(renamed), undefined, 'an unchanged template is not listed');
    assert.deepEqual(templateChange(toDefault), { field: 'payload.template', from: '***', to: null });
    assert.deepEqual(header.changes, [{ field: 'webhook.headers.X-Api-Key', from: '***', to: '***' }], 'a changed header value is listed, masked');

    const answer = JSON.stringify(await auditOf(configId));
    const rows = JSON.stringify(await stack.service.db.query('SELECT * FROM alert_audit_log WHERE config_id = $1', [configId]));
    assert.ok(!answer.includes(marker), 'the answer shows a template or header value');
    assert.ok(!rows.includes(marker), 'the audit rows hold a template or header value');
  });

  it('records a config the service disabled after a 410, with no token', async function () {
    this.timeout(30_000);
    const receiver = await Receiver.start();
    try {
      const workflowId = `wf_audit_gone_${uid()}`;
      const url = receiver.on(`/${workflowId}`, () => ({ status: 410 }));
      const created = await stack.api('POST', '/api/alerts/config', {
        config: { workflowId, name: 'gone', conditions: [{ type: 'failure' }], webhook: { url }, retry: { maxAttempts: 1 } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const tested = await stack.api('POST', '/api/alerts/test', { configId: created.body.config.id });
      assert.equal(tested.body.httpStatus, 410, JSON.stringify(tested.body));

      const [disabled] = await auditOf(created.body.config.id);
      assert.equal(disabled.action, 'config.disabled');
      assert.equal(disabled.tokenId, null, 'the service itself made the change');
      assert.deepEqual(disabled.changes[0], { field: 'enabled', from: true, to: false });
      assert.equal(disabled.changes[1].field, 'disabledReason');
      assert.match(String(disabled.changes[1].to), /receiver answered 410 Gone/);
      assert.ok(!JSON.stringify(disabled).includes(receiver.url), 'the reason does not hold the URL');
    } finally {
      await receiver.close();
    }
  });

  it('writes nothing for a rejected change, and shows none of a project’s entries to another project', async () => {
    const workflowId = `wf_audit_iso_${uid()}`;
    const created = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'mine', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/a' } },
    });
    const configId = created.body.config.id;
    const refused = await stack.api('POST', '/api/alerts/config', { config: { id: configId, workflowId, name: 'x', conditions: [], webhook: { url: 'https://hooks.example.com/a' } } });
    assert.equal(refused.status, 400);
    assert.equal((await stack.api('POST', `/api/alerts/config/by-id/${configId}/rotate-secret`, { graceSeconds: -1 })).status, 400);
    assert.deepEqual((await auditOf(configId)).map((e) => e.action), ['config.created']);

    const other = await stack.tokenFor(`prj_audit_other_${uid()}`);
    assert.deepEqual(await auditOf(configId, other), []);
    assert.equal((await stack.api('DELETE', `/api/alerts/config/by-id/${configId}`, undefined, other)).status, 404);
    const theirs = await stack.api('GET', '/api/alerts/audit?limit=500', undefined, other);
    assert.ok(!JSON.stringify(theirs.body).includes(configId), "another project's list holds none of this config's entries");
    assert.deepEqual((await auditOf(configId)).map((e) => e.action), ['config.created'], 'the refused delete wrote nothing');
  });

  it('pages through the entries with limit and cursor, and refuses bad query parameters naming them', async () => {
    const workflowId = `wf_audit_pages_${uid()}`;
    const created = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'p0', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/a' } },
    });
    const configId = created.body.config.id;
    for (let i = 1; i <= 4; i++) {
      const res = await stack.api('POST', '/api/alerts/config', {
        config: { id: configId, workflowId, name: `p${i}`, conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/a' } },
      });
      assert.equal(res.status, 200);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await stack.api('GET', `/api/alerts/audit?configId=${configId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.entries.length <= 2);
      seen.push(...res.body.entries.map((e: { changes: { field: string; to: string }[] }) => e.changes.find((c) => c.field === 'name')!.to));
      cursor = res.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, ['p4', 'p3', 'p2', 'p1', 'p0']);

    for (const [query, field] of [['limit=0', 'limit'], ['limit=501', 'limit'], ['cursor=abc', 'cursor'], ['cursor=9999999999999999999', 'cursor'], ['colour=red', 'colour']]) {
      const res = await stack.api('GET', `/api/alerts/audit?${query}`);
      assert.equal(res.status, 400, query);
      assert.ok(res.body.error.message.startsWith(`${field}:`), `${query}: ${res.body.error.message}`);
    }
  });

  describe('configChanges (lib/audit.ts)', () => {
    const base = {
      workflowId: 'wf', name: 'n', enabled: true, disabledReason: null, conditions: [{ type: 'failure' as const }],
      webhook: { url: 'https://h.example.com/a', headers: { 'X-K': 'v1' }, timeoutMs: 1000 },
      payload: { template: null }, retry: { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 100, maxDurationMs: 1000 },
    };

    it('lists nothing when nothing changed, and a changed URL or header value even though its masked form is the same', () => {
      assert.deepEqual(configChanges(base, base), []);
      assert.deepEqual(configChanges(base, { ...base, webhook: { ...base.webhook, url: 'https://h.example.com/b' } }), [
        { field: 'webhook.url', from: 'https://h.example.com/***', to: 'https://h.example.com/***' },
      ]);
      assert.deepEqual(configChanges(base, { ...base, webhook: { ...base.webhook, headers: { 'X-K': 'v2' } } }), [{ field: 'webhook.headers.X-K', from: '***', to: '***' }]);
    });

    it('lists a changed payload template masked, even though its masked form is the same; null (the default payload) stays null', () => {
      const withTemplate = { ...base, payload: { template: { text: 'token-1' } } };
      assert.deepEqual(configChanges(base, withTemplate), [{ field: 'payload.template', from: null, to: '***' }]);
      assert.deepEqual(configChanges(withTemplate, { ...base, payload: { template: { text: 'token-2' } } }), [{ field: 'payload.template', from: '***', to: '***' }]);
      assert.deepEqual(configChanges(withTemplate, { ...base, payload: { template: { text: 'token-1' } } }), []);
      assert.deepEqual(configChanges(undefined, withTemplate).find((c) => c.field === 'payload.template'), { field: 'payload.template', to: '***' });
      assert.deepEqual(configChanges(withTemplate, undefined).find((c) => c.field === 'payload.template'), { field: 'payload.template', from: '***' });
    });

    it('masks a URL to its scheme and host, dropping user info', () => {
      assert.equal(maskUrl('HTTPS://u:p@hooks.example.com:8443/x?y#z'), 'https://hooks.example.com:8443/***');
      assert.equal(maskUrl('not a url'), '***');
    });
  });
});
