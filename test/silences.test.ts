import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hashToken } from '../lib/crypto';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * POST/GET/DELETE /api/silences through real HTTP on the shared stack: what is stored and answered
 * (activeNow, nextWindow), each refusal naming its field, another project's config, the audit
 * entries, and an event of a silenced workflow logged `silenced` instead of sent.
 */

const uid = () => randomBytes(4).toString('hex');
const inMinutes = (m: number) => new Date(Date.now() + m * 60_000).toISOString();

describe('silences API', function () {
  let stack: TestStack;
  let receiver: Receiver;
  let tokenId: string;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
    const [row] = await stack.service.db.query<{ id: string }>('SELECT id FROM api_tokens WHERE token_hash = $1', [hashToken(stack.token)]);
    tokenId = row.id;
  });

  after(async () => {
    await receiver?.close();
  });

  async function newConfig(workflowId: string, token?: string, path = `/silenced-${uid()}`): Promise<{ id: string; path: string }> {
    const res = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'silenced', conditions: [{ type: 'failure' }], webhook: { url: receiver.on(path, () => ({ status: 200 })) } },
    }, token);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.config.id, path };
  }

  const auditEntries = async () => {
    const res = await stack.api('GET', '/api/alerts/audit?limit=500');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.entries as { action: string; configId: string | null; workflowId: string | null; tokenId: string | null; changes: { field: string; from?: unknown; to?: unknown }[] }[];
  };

  it('creates a one-off silence of a config, lists it in force, and deletes it, each audited with the token', async () => {
    const workflowId = `wf_sil_${uid()}`;
    const config = await newConfig(workflowId);
    const body = { configId: config.id, from: inMinutes(-5), until: inMinutes(55), comment: 'CRM upgrade' };
    const created = await stack.api('POST', '/api/silences', body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const silence = created.body;
    assert.match(silence.id, /^sil_/);
    assert.equal(silence.configId, config.id);
    assert.equal(silence.workflowId, null);
    assert.equal(silence.from, new Date(body.from).toISOString());
    assert.equal(silence.until, new Date(body.until).toISOString());
    assert.equal(silence.recurrence, null);
    assert.equal(silence.comment, 'CRM upgrade');
    assert.equal(silence.activeNow, true);
    assert.deepEqual(silence.nextWindow, { from: silence.from, until: silence.until });

    const listed = await stack.api('GET', `/api/silences?configId=${config.id}`);
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.silences.map((s: { id: string }) => s.id), [silence.id]);
    assert.equal(listed.body.silences[0].activeNow, true);
    // a config's silence is not one of its workflow's as a whole
    assert.deepEqual((await stack.api('GET', `/api/silences?workflowId=${workflowId}`)).body.silences, []);

    const deleted = await stack.api('DELETE', `/api/silences/${silence.id}`);
    assert.equal(deleted.status, 204);
    assert.deepEqual((await stack.api('GET', `/api/silences?configId=${config.id}`)).body.silences, []);
    const again = await stack.api('DELETE', `/api/silences/${silence.id}`);
    assert.equal(again.status, 404);
    assert.equal(again.body.error.code, 'not_found');
    assert.equal(again.body.error.message, `silence ${silence.id} not found`);

    const entries = (await auditEntries()).filter((e) => e.changes.some((c) => c.field === 'id' && (c.to ?? c.from) === silence.id));
    assert.deepEqual(entries.map((e) => e.action), ['silence.deleted', 'silence.created']);
    for (const e of entries) {
      assert.equal(e.configId, config.id);
      assert.equal(e.workflowId, workflowId);
      assert.equal(e.tokenId, tokenId);
    }
    assert.deepEqual(entries[1].changes.find((c) => c.field === 'comment'), { field: 'comment', to: 'CRM upgrade' });
    assert.deepEqual(entries[0].changes.find((c) => c.field === 'until'), { field: 'until', from: silence.until });
  });

  it("creates a recurring silence of a workflow with its next window in its time zone", async () => {
    const workflowId = `wf_sil_${uid()}`;
    const created = await stack.api('POST', '/api/silences', { workflowId, recurrence: { cron: '0 2 * * SAT', durationSeconds: 7200, timeZone: 'Europe/Berlin' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const silence = created.body;
    assert.equal(silence.workflowId, workflowId);
    assert.equal(silence.configId, null);
    assert.deepEqual(silence.recurrence, { cron: '0 2 * * SAT', durationSeconds: 7200, timeZone: 'Europe/Berlin' });
    assert.equal(silence.from, null);
    const start = new Date(silence.nextWindow.from);
    // a Saturday, 02:00 in Berlin
    assert.equal(start.toLocaleString('en-GB', { timeZone: 'Europe/Berlin', weekday: 'short', hour: '2-digit', minute: '2-digit' }), 'Sat 02:00');
    assert.equal(Date.parse(silence.nextWindow.until) - start.getTime(), 7_200_000);
    assert.ok(Date.parse(silence.nextWindow.until) > Date.now());
    const listed = await stack.api('GET', `/api/silences?workflowId=${workflowId}`);
    assert.deepEqual(listed.body.silences.map((s: { id: string }) => s.id), [silence.id]);
    const [entry] = (await auditEntries()).filter((e) => e.changes.some((c) => c.field === 'id' && c.to === silence.id));
    assert.equal(entry.action, 'silence.created');
    assert.equal(entry.configId, null);
    assert.equal(entry.workflowId, workflowId);
    assert.deepEqual(entry.changes.find((c) => c.field === 'recurrence.cron'), { field: 'recurrence.cron', to: '0 2 * * SAT' });
  });

  describe('refuses with 400 naming the field', () => {
    const recurrence = { cron: '0 2 * * *', durationSeconds: 3600, timeZone: 'UTC' };
    // one instant for both ends (two calls of inMinutes may be a millisecond apart)
    const inAnHour = inMinutes(60);
    const cases: [string, object, string, RegExp][] = [
      ['neither configId nor workflowId', { from: inMinutes(1), until: inMinutes(60) }, 'configId', /give configId .* or workflowId/],
      ['both configId and workflowId', { configId: 'cfg_x', workflowId: 'wf_x', from: inMinutes(1), until: inMinutes(60) }, 'workflowId', /not both/],
      ['no from', { workflowId: 'wf_x', until: inMinutes(60) }, 'from', /from is required/],
      ['no until', { workflowId: 'wf_x', from: inMinutes(1) }, 'until', /until is required with from/],
      ['until before from', { workflowId: 'wf_x', from: inMinutes(60), until: inMinutes(1) }, 'until', /until must be after from/],
      ['until equal to from', { workflowId: 'wf_x', from: inAnHour, until: inAnHour }, 'until', /until must be after from/],
      ['a one-off window and a recurrence', { workflowId: 'wf_x', from: inMinutes(1), until: inMinutes(60), recurrence }, 'recurrence', /one-off .* or recurring .*, not both/],
      ['a bad cron', { workflowId: 'wf_x', recurrence: { ...recurrence, cron: '0 2 * *' } }, 'recurrence.cron', /needs 5 fields/],
      ['a cron value out of range', { workflowId: 'wf_x', recurrence: { ...recurrence, cron: '0 2 * * 9' } }, 'recurrence.cron', /the day-of-week field "9": 9 is out of range/],
      ['an unknown time zone', { workflowId: 'wf_x', recurrence: { ...recurrence, timeZone: 'Europe/Nowhere' } }, 'recurrence.timeZone', /unknown time zone "Europe\/Nowhere"/],
      ['a duration under a minute', { workflowId: 'wf_x', recurrence: { ...recurrence, durationSeconds: 10 } }, 'recurrence.durationSeconds', /at least 60/],
      ['a from that is no time', { workflowId: 'wf_x', from: 'tomorrow', until: inMinutes(60) }, 'from', /./],
    ];
    for (const [what, body, path, message] of cases) {
      it(what, async () => {
        const res = await stack.api('POST', '/api/silences', body);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'invalid_request');
        const issue = res.body.error.details.issues.find((i: { path: string }) => i.path === path);
        assert.ok(issue, `an issue names ${path}: ${JSON.stringify(res.body.error)}`);
        assert.match(issue.message, message);
        assert.ok(res.body.error.message.startsWith(`${path}: `), res.body.error.message);
      });
    }

    it('both configId and workflowId in the list query', async () => {
      const res = await stack.api('GET', '/api/silences?configId=cfg_x&workflowId=wf_x');
      assert.equal(res.status, 400);
      assert.equal(res.body.error.details.issues[0].path, 'workflowId');
    });
  });

  it("deletes a config's own silences with the config, and keeps its workflow's", async () => {
    const workflowId = `wf_sil_del_${uid()}`;
    const config = await newConfig(workflowId);
    const own = await stack.api('POST', '/api/silences', { configId: config.id, from: inMinutes(-5), until: inMinutes(55) });
    const workflows = await stack.api('POST', '/api/silences', { workflowId, from: inMinutes(-5), until: inMinutes(55) });
    assert.equal(own.status, 201, JSON.stringify(own.body));
    assert.equal(workflows.status, 201, JSON.stringify(workflows.body));
    assert.equal((await stack.api('DELETE', `/api/alerts/config/by-id/${config.id}`)).status, 204);
    assert.deepEqual(await stack.service.db.query('SELECT id FROM alert_silences WHERE config_id = $1', [config.id]), []);
    assert.deepEqual((await stack.api('GET', `/api/silences?workflowId=${workflowId}`)).body.silences.map((s: { id: string }) => s.id), [workflows.body.id]);
  });

  it("answers 404 for another project's config, and does not show or delete another project's silences", async () => {
    const other = await stack.tokenFor(`proj_sil_${uid()}`);
    const theirs = await newConfig(`wf_sil_${uid()}`, other);
    const res = await stack.api('POST', '/api/silences', { configId: theirs.id, from: inMinutes(1), until: inMinutes(60) });
    assert.equal(res.status, 404, JSON.stringify(res.body));
    assert.equal(res.body.error.message, `alert config ${theirs.id} not found`);
    assert.equal((await stack.api('GET', `/api/silences?configId=${theirs.id}`)).status, 404);

    const created = await stack.api('POST', '/api/silences', { configId: theirs.id, from: inMinutes(1), until: inMinutes(60) }, other);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.ok(!(await stack.api('GET', '/api/silences?all=true')).body.silences.some((s: { id: string }) => s.id === created.body.id));
    assert.equal((await stack.api('DELETE', `/api/silences/${created.body.id}`)).status, 404);
    assert.equal((await stack.api('GET', `/api/silences?configId=${theirs.id}`, undefined, other)).body.silences.length, 1);
  });

  it("erases a project's silences with the project", async () => {
    const projectId = `proj_sil_${uid()}`;
    const token = await stack.tokenFor(projectId);
    const created = await stack.api('POST', '/api/silences', { workflowId: 'wf_x', recurrence: { cron: '@daily', durationSeconds: 60, timeZone: 'UTC' } }, token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const erased = await stack.api('POST', '/api/project/erase', { confirm: projectId }, token);
    assert.equal(erased.status, 200, JSON.stringify(erased.body));
    assert.deepEqual((await stack.api('GET', '/api/silences?all=true', undefined, token)).body.silences, []);
    assert.deepEqual(await stack.service.db.query('SELECT id FROM alert_silences WHERE project_id = $1', [projectId]), []);
  });

  it('lists a one-off silence that ended more than 7 days ago only with all=true', async () => {
    const workflowId = `wf_sil_${uid()}`;
    const created = await stack.api('POST', '/api/silences', { workflowId, from: inMinutes(1), until: inMinutes(60) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // as if it had been created for a window long gone (the API refuses one that has ended)
    await stack.service.db.query(`UPDATE alert_silences SET starts_at = now() - interval '9 days', ends_at = now() - interval '8 days' WHERE id = $1`, [created.body.id]);
    assert.deepEqual((await stack.api('GET', `/api/silences?workflowId=${workflowId}`)).body.silences, []);
    const all = await stack.api('GET', `/api/silences?workflowId=${workflowId}&all=true`);
    assert.equal(all.body.silences.length, 1);
    assert.equal(all.body.silences[0].activeNow, false);
    assert.equal(all.body.silences[0].nextWindow, null);
  });

  it("logs a failed run of a silenced workflow as silenced (attempt 0) and sends nothing; another workflow's is sent", async () => {
    const workflowId = `wf_sil_${uid()}`;
    const loudWorkflowId = `wf_sil_${uid()}`;
    const config = await newConfig(workflowId);
    const loud = await newConfig(loudWorkflowId);
    const silence = await stack.api('POST', '/api/silences', { workflowId, from: inMinutes(-1), until: inMinutes(30), comment: 'deploy' });
    assert.equal(silence.status, 201, JSON.stringify(silence.body));
    const event = (wf: string) => ({ id: `evt_${uid()}`, type: 'run.failed', workflowId: wf, runId: `run_${uid()}`, error: { message: 'boom' } });

    const quiet = await stack.api('POST', '/api/events', event(workflowId));
    assert.equal(quiet.status, 202, JSON.stringify(quiet.body));
    const [entry] = quiet.body.deliveries;
    assert.equal(entry.noise, 'silenced');
    const rows = await stack.api('GET', `/api/alerts/logs?deliveryId=${encodeURIComponent(entry.deliveryId)}`);
    assert.equal(rows.body.logs.length, 1, JSON.stringify(rows.body));
    assert.equal(rows.body.logs[0].attempt, 0);
    assert.equal(rows.body.logs[0].outcome, 'silenced');
    assert.match(rows.body.logs[0].error, new RegExp(`^silenced by ${silence.body.id} \\(maintenance window until .*: deploy\\)$`));

    const sent = await stack.api('POST', '/api/events', event(loudWorkflowId));
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    await receiver.waitFor(loud.path, 1);
    assert.equal(receiver.at(config.path).length, 0, 'the silenced config received nothing');
  });
});
