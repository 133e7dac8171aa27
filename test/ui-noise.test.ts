import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The editor's noise control in Debian's Chromium, headless, against the shared test stack: every
 * setting edited and saved (the API's answer holds it, a refused value is named at its field, a
 * setting turned off is saved as null), a digest and a recovery previewed through the service's
 * renderer, and a config's silences: a one-off one from local times, a recurring one in the
 * browser's time zone, a bad cron named at its field, a delete. The browser runs in Europe/Berlin,
 * so that local times and the default time zone are not the server's UTC.
 * Screenshots: docs/screenshots/noise-settings.png, noise-preview.png (docs/web-ui.md).
 */

const SHOTS = path.join(__dirname, '..', 'docs', 'screenshots');
const uid = () => randomBytes(4).toString('hex');
const BROWSER_ZONE = 'Europe/Berlin';

describe('web UI noise control: settings, digest and recovery preview, silences (Chromium)', function () {
  this.timeout(180_000);
  let stack: TestStack;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  let token = '';
  const projectId = `noise_ui_${uid()}`;
  const workflowId = `wf_orders_${uid()}`;
  let configId = '';

  const api = (method: string, p: string, body?: unknown) => stack.api(method, p, body, token);
  const storedConfig = async () => (await api('GET', `/api/alerts/config/${workflowId}`)).body.configs.find((c: { id: string }) => c.id === configId);
  const save = async () => {
    await page.getByRole('button', { name: 'Save changes' }).click();
  };
  const saved = async () => {
    await save();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  };
  const noise = () => page.getByTestId('noise-control');
  const silences = () => page.getByTestId('silences');

  before(async function () {
    this.timeout(5 * 60_000);
    execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    fs.mkdirSync(SHOTS, { recursive: true });
    [stack, receiver] = await Promise.all([useStack(), Receiver.start()]);
    token = await stack.tokenFor(projectId);
    const res = await api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'Orders failures to on-call', conditions: [{ type: 'failure' }], webhook: { url: receiver.on('/noise-ui', () => ({ status: 200 })) } },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    configId = res.body.config.id;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: BROWSER_ZONE });
    page = await context.newPage();
    page.on('pageerror', (err) => console.error('[browser]', err));
    await page.goto(`${stack.apiUrl}/`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Project overview' }).waitFor();
    await page.goto(`${stack.apiUrl}/#/w/${workflowId}/c/${configId}`);
    await page.getByLabel('Name', { exact: true }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await receiver?.close();
  });

  it('starts with every setting off, as the service stores a new config', async () => {
    for (const label of ['Group alerts into digests', 'Send a recovery alert', 'Throttle alerts', 'Deduplicate alerts', 'Limit repeats of a still-failing workflow']) {
      assert.equal(await noise().getByLabel(label).isChecked(), false, label);
    }
    const c = await storedConfig();
    assert.deepEqual([c.grouping, c.recovery, c.throttle, c.dedup, c.repeatIntervalSeconds], [null, false, null, null, null]);
    // each setting says what it does (the grouping fields' defaults show once grouping is on)
    const text = await noise().innerText();
    assert.match(text, /every setting is off by default/);
    assert.match(text, /a silence .* → deduplicate and repeat → throttle → group into a digest → send/);
    assert.match(text, /Once per incident\. Off by default/);
  });

  it('edits every setting and saves them: a refused value is named at its field, the API answer holds them, a reload shows them', async () => {
    await noise().getByLabel('Group alerts into digests').check();
    assert.match(await noise().innerText(), /Default 30, 0 to 3600[\s\S]*Default 300[\s\S]*Default 100, at most 1000/);
    assert.equal(await page.getByLabel('Wait before the first digest (s)').inputValue(), '30', 'the service’s default');
    assert.equal(await noise().getByLabel('the workflow (workflow.id)').isChecked(), true, 'grouped by the workflow by default');
    await noise().getByLabel('the failing step (error.step)').check();
    await page.getByLabel('Wait before the first digest (s)').fill('10');
    await page.getByLabel('Digest interval (s)').fill('120');
    await page.getByLabel('Runs listed per digest').fill('2');
    await noise().getByLabel('Send a recovery alert').check();
    await noise().getByLabel('Throttle alerts').check();
    await page.getByLabel('Alerts per window').fill('5');
    await page.getByLabel('Throttle window (s)').fill('0');
    await noise().getByLabel('Deduplicate alerts').check();
    await page.getByLabel('Dedup key (a Liquid template)').fill('{{ error.step | no_such_filter }}');
    await page.getByLabel('Dedup window (s)').fill('600');
    await noise().getByLabel('Limit repeats of a still-failing workflow').check();
    await page.getByLabel('Repeat interval (s)').fill('1800');

    // the API's 400 names both fields; the editor shows each beside its field
    await save();
    await page.getByTestId('save-error').filter({ hasText: /Not saved: 2 fields need fixing/ }).waitFor();
    assert.match(await page.locator('#throttle-window-error').innerText(), /throttle\.windowSeconds must be at least 1/);
    assert.equal(await page.getByLabel('Throttle window (s)').getAttribute('aria-invalid'), 'true');
    assert.match(await page.locator('#dedup-key-error').innerText(), /no_such_filter|filter/i);
    assert.equal(await page.getByLabel('Dedup key (a Liquid template)').getAttribute('aria-invalid'), 'true');
    assert.equal((await storedConfig()).throttle, null, 'nothing saved');

    await page.getByLabel('Throttle window (s)').fill('60');
    await page.getByLabel('Dedup key (a Liquid template)').fill('{{ error.step }}');
    await saved();
    const c = await storedConfig();
    assert.deepEqual(
      { grouping: c.grouping, recovery: c.recovery, throttle: c.throttle, dedup: c.dedup, repeatIntervalSeconds: c.repeatIntervalSeconds },
      {
        grouping: { by: ['workflow.id', 'error.step'], waitSeconds: 10, intervalSeconds: 120, maxEvents: 2 },
        recovery: true,
        throttle: { maxPerWindow: 5, windowSeconds: 60 },
        dedup: { key: '{{ error.step }}', windowSeconds: 600 },
        repeatIntervalSeconds: 1800,
      },
    );
    assert.deepEqual(await page.locator('.field-error').allInnerTexts(), [], 'no error left');

    await page.reload();
    await page.getByLabel('Name', { exact: true }).waitFor();
    for (const label of ['Group alerts into digests', 'Send a recovery alert', 'Throttle alerts', 'Deduplicate alerts', 'Limit repeats of a still-failing workflow']) {
      assert.equal(await noise().getByLabel(label).isChecked(), true, label);
    }
    assert.equal(await noise().getByLabel('the failing step (error.step)').isChecked(), true);
    assert.equal(await noise().getByLabel('the error code (error.code)').isChecked(), false);
    assert.deepEqual(
      await Promise.all(['Wait before the first digest (s)', 'Digest interval (s)', 'Runs listed per digest', 'Alerts per window', 'Throttle window (s)', 'Dedup key (a Liquid template)', 'Dedup window (s)', 'Repeat interval (s)'].map((l) => page.getByLabel(l).inputValue())),
      ['10', '120', '2', '5', '60', '{{ error.step }}', '600', '1800'],
    );
    await noise().scrollIntoViewIfNeeded();
    await page.waitForTimeout(150);
    await noise().screenshot({ path: path.join(SHOTS, 'noise-settings.png') });
  });

  it('saves a setting turned off as null, and a grouping by no field is refused at its field', async () => {
    await noise().getByLabel('Limit repeats of a still-failing workflow').uncheck();
    await noise().getByLabel('the workflow (workflow.id)').uncheck();
    await noise().getByLabel('the failing step (error.step)').uncheck();
    await save();
    await page.locator('#grouping-by-error').filter({ hasText: 'grouping.by must name at least one field' }).waitFor();
    assert.equal((await storedConfig()).repeatIntervalSeconds, 1800, 'nothing saved');
    await noise().getByLabel('the failing step (error.step)').check();
    await saved();
    const c = await storedConfig();
    assert.equal(c.repeatIntervalSeconds, null);
    assert.deepEqual(c.grouping.by, ['error.step']);
    assert.equal(c.recovery, true, 'the others are kept');
    assert.deepEqual(c.dedup, { key: '{{ error.step }}', windowSeconds: 600 });
  });

  it('previews a digest and a recovery, rendered by the service', async () => {
    const body = page.getByTestId('preview-body');
    await body.filter({ hasText: 'Orders sync run run_789 failed: HTTP 500 from CRM' }).waitFor();
    await page.getByRole('button', { name: 'Preview digest' }).click();
    assert.equal(await page.getByRole('button', { name: 'Preview digest' }).getAttribute('aria-pressed'), 'true');
    await body.filter({ hasText: /Orders sync: 3 failed runs between 2026-11-29T09:58:00Z and 2026-11-29T10:00:00Z/ }).waitFor();
    const digest = JSON.parse(await body.innerText());
    assert.equal(digest.type, 'alert.failure.digest');
    assert.equal(digest.group.count, 3);
    // grouping.maxEvents is 2: two listed, one counted
    assert.deepEqual([digest.group.events.length, digest.group.more], [2, 1]);
    assert.deepEqual(digest.group.by, ['error.step']);
    assert.equal(digest.group.key, 'failure|createContact');
    assert.match(await page.locator('#preview-title').innerText(), /a first digest of 3 sample failed runs/);
    await page.locator('section.preview').scrollIntoViewIfNeeded();
    await page.waitForTimeout(150);
    await page.locator('section.preview').screenshot({ path: path.join(SHOTS, 'noise-preview.png') });

    await page.getByRole('button', { name: 'Preview recovery' }).click();
    await body.filter({ hasText: 'Orders sync recovered after failing for 5m 0s (4 failures)' }).waitFor();
    const recovery = JSON.parse(await body.innerText());
    assert.equal(recovery.type, 'alert.recovered');
    assert.equal(recovery.condition, 'recovered');
    assert.deepEqual(recovery.recovery, { failingSince: '2026-11-29T09:55:00Z', recoveredAt: '2026-11-29T10:00:00Z', failingForMs: 300_000, failures: 4, incidentKey: workflowId });
    assert.equal(recovery.error, null, 'a successful run');
    assert.equal(await page.getByRole('button', { name: 'Preview digest' }).getAttribute('aria-pressed'), 'false');

    // a template of the user's sees the group
    await page.getByRole('button', { name: 'Preview digest' }).click();
    await page.getByLabel('My own template').check();
    await page.getByLabel(/Payload template/).fill(JSON.stringify({ text: '{{ group.count }} runs of {{ workflow.name }} failed, first {{ group.events[0].runId }}' }));
    await body.filter({ hasText: '"3 runs of Orders sync failed, first run_789_1"' }).waitFor();
    // pressed again: one alert
    await page.getByRole('button', { name: 'Preview digest' }).click();
    await body.filter({ hasText: /" runs of Orders sync failed, first "/ }).waitFor();
    await page.getByLabel('Default payload', { exact: false }).check();
  });

  it('previews through the API: sample digest and recovery, the existing preview unchanged', async () => {
    const config = { workflowId, name: 'P', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/x' }, payload: { template: { n: '{{ group.count }}', r: '{{ recovery.failures }}', c: '{{ condition }}' } } };
    const plain = await api('POST', '/api/alerts/preview', { config });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.deepEqual(JSON.parse(plain.body.body), { n: null, r: null, c: 'failure' });
    const digest = await api('POST', '/api/alerts/preview', { config, sample: 'digest' });
    assert.equal(digest.status, 200, JSON.stringify(digest.body));
    assert.deepEqual(JSON.parse(digest.body.body), { n: 3, r: null, c: 'failure' });
    assert.match(digest.body.deliveryId, /-digest-preview-1$/);
    const recovery = await api('POST', '/api/alerts/preview', { config, sample: 'recovery' });
    assert.deepEqual(JSON.parse(recovery.body.body), { n: null, r: 4, c: 'recovered' });
    assert.equal(recovery.body.condition, 'recovered');
    assert.equal(recovery.body.event.type, 'run.succeeded');
    assert.equal((await api('POST', '/api/alerts/preview', { config, sample: 'burst' })).status, 400);
  });

  it('adds a one-off silence from local times, and a recurring one in the browser’s time zone; a bad cron is named at its field', async () => {
    await silences().scrollIntoViewIfNeeded();
    await silences().getByTestId('silences-empty').waitFor();
    // one-off, for this config: 09:00 to 11:30 in Berlin (UTC+1 in January)
    await silences().getByLabel('From', { exact: true }).fill('2030-01-10T09:00');
    await silences().getByLabel('Until', { exact: true }).fill('2030-01-10T11:30');
    await silences().getByLabel('Comment').fill('CRM maintenance');
    await silences().getByRole('button', { name: 'Add silence' }).click();
    await silences().getByRole('status').filter({ hasText: 'Silence added.' }).waitFor();
    let list = (await api('GET', `/api/silences?configId=${configId}`)).body.silences;
    assert.equal(list.length, 1, JSON.stringify(list));
    assert.deepEqual([list[0].configId, list[0].workflowId, list[0].from, list[0].until, list[0].recurrence, list[0].comment], [configId, null, '2030-01-10T08:00:00.000Z', '2030-01-10T10:30:00.000Z', null, 'CRM maintenance']);
    assert.equal(list[0].activeNow, false);
    const oneOff = list[0].id;
    const row = silences().locator(`[data-silence-id="${oneOff}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /One-off[\s\S]*this config[\s\S]*CRM maintenance/);
    assert.match(await row.getByTestId('silence-window').innerText(), /^Next: /);

    // until before from: the API's 400 at its field
    await silences().getByLabel('From', { exact: true }).fill('2030-01-10T12:00');
    await silences().getByRole('button', { name: 'Add silence' }).click();
    await silences().getByTestId('silence-error').waitFor();
    assert.ok((await silences().locator('.field-error').allInnerTexts()).some((t) => /until|from/.test(t)));

    // recurring, for every config of the workflow
    await silences().getByLabel(`Every config of workflow ${workflowId}`).check();
    await silences().getByLabel('Recurring (a maintenance window)').check();
    assert.equal(await silences().getByLabel('Time zone').inputValue(), BROWSER_ZONE, 'the browser’s time zone by default');
    await silences().getByLabel('Starts (cron)').fill('0 2 * * NOPE');
    await silences().getByLabel('Lasts (minutes)').fill('90');
    await silences().getByLabel('Comment').fill('Weekly backup');
    await silences().getByRole('button', { name: 'Add silence' }).click();
    await page.locator('#silence-cron-error').waitFor();
    assert.equal(await silences().getByLabel('Starts (cron)').getAttribute('aria-invalid'), 'true');
    await silences().getByLabel('Starts (cron)').fill('0 2 * * 6');
    await silences().getByRole('button', { name: 'Add silence' }).click();
    await silences().getByRole('status').filter({ hasText: 'Silence added.' }).waitFor();
    list = (await api('GET', `/api/silences?workflowId=${workflowId}`)).body.silences;
    const recurring = list.find((s: { recurrence: unknown }) => s.recurrence);
    assert.ok(recurring, JSON.stringify(list));
    assert.deepEqual([recurring.configId, recurring.workflowId, recurring.recurrence, recurring.comment], [null, workflowId, { cron: '0 2 * * 6', durationSeconds: 5400, timeZone: BROWSER_ZONE }, 'Weekly backup']);
    // its next window starts on a Saturday at 02:00 in Berlin
    const start = new Date(recurring.nextWindow.from);
    assert.equal(start.toLocaleString('en-GB', { timeZone: BROWSER_ZONE, weekday: 'short', hour: '2-digit', minute: '2-digit' }), 'Sat 02:00');
    assert.equal(Date.parse(recurring.nextWindow.until) - start.getTime(), 5400_000);
    const recurringRow = silences().locator(`[data-silence-id="${recurring.id}"]`);
    await recurringRow.waitFor();
    assert.match(await recurringRow.innerText(), new RegExp(`Recurring[\\s\\S]*every config of ${workflowId}[\\s\\S]*0 2 \\* \\* 6 in ${BROWSER_ZONE}, for 90 min each time`));
    assert.equal(await silences().locator('[data-silence-id]').count(), 2, 'the config’s and its workflow’s');
  });

  it('deletes a silence', async () => {
    const [oneOff] = (await api('GET', `/api/silences?configId=${configId}`)).body.silences;
    page.once('dialog', (dialog) => void dialog.accept());
    await silences().getByRole('button', { name: 'Delete silence CRM maintenance' }).click();
    await silences().locator(`[data-silence-id="${oneOff.id}"]`).waitFor({ state: 'detached' });
    assert.deepEqual((await api('GET', `/api/silences?configId=${configId}`)).body.silences.filter((s: { id: string }) => s.id === oneOff.id), []);
    assert.equal(await silences().locator('[data-silence-id]').count(), 1);
  });

  it('labels every control, and fits a narrow screen (375 px)', async () => {
    const unlabelled = `[...document.querySelectorAll('main input, main textarea, main select, main button, main summary')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (['BUTTON', 'SUMMARY'].includes(el.tagName) && el.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 120))`;
    assert.deepEqual(await page.evaluate(unlabelled), []);
    await page.setViewportSize({ width: 375, height: 812 });
    await page.reload();
    await page.getByLabel('Name', { exact: true }).waitFor();
    await silences().locator('[data-silence-id]').first().waitFor();
    await silences().getByLabel('Recurring (a maintenance window)').check();
    assert.equal(await page.evaluate<string>("document.documentElement.scrollWidth > window.innerWidth + 1 ? document.documentElement.scrollWidth + ' px wide' : ''"), '');
    await page.setViewportSize({ width: 1280, height: 900 });
  });
});
