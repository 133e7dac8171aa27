import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import { Webhook } from 'standardwebhooks';
import { alertConfigInputSchema } from '../lib/schemas';
import { saveConfig } from '../store/configs';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The web UI (ui/, served by the API at /) driven in Debian's Chromium, headless, against the shared
 * test stack: sign in, create a config, a validation error beside its field, a test alert the
 * receiver gets (and verifies), editing a config, rotating its secret, the egress policy's refusals
 * explained, a delivery that retries and then succeeds in its timeline, keyboard use and a narrow
 * screen. The main screens are saved to docs/screenshots/ (the README and docs/getting-started.md show them).
 */

const SHOTS = path.join(__dirname, '..', 'docs', 'screenshots');
const uid = () => randomBytes(4).toString('hex');
const signatureHeaders = (req: Received) => ({
  'webhook-id': String(req.headers['webhook-id']),
  'webhook-timestamp': String(req.headers['webhook-timestamp']),
  'webhook-signature': String(req.headers['webhook-signature']),
});
/** A 10.0.0.0/8 address: refused by the test stack's policy (ALERTS_EGRESS_ALLOW=127.0.0.1) before any connection. */
const REFUSED_URL = 'http://10.255.255.1/hook';

describe('web UI (Chromium)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  const workflowId = `wf_ui_${uid()}`;
  let configId = '';
  let secret = '';
  let flakyDeliveryId = '';

  const shot = async (name: string, fullPage = true) => {
    await page.waitForTimeout(150); // let the last render settle
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
  };

  before(async function () {
    this.timeout(5 * 60_000);
    // the UI as npm install / npm start build it (a no-op when ui/dist is up to date)
    execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    fs.mkdirSync(SHOTS, { recursive: true });
    [stack, receiver] = await Promise.all([useStack(), Receiver.start()]);
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
    page = await context.newPage();
    page.on('pageerror', (err) => console.error('[browser]', err));
  });

  after(async () => {
    await browser?.close();
    await receiver?.close();
  });

  it('signs in with an API token, kept in sessionStorage only', async () => {
    await page.goto(`${stack.apiUrl}/`);
    await page.getByLabel('API token').fill('mha_not_a_real_token_at_all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#token-error').waitFor();
    assert.match(await page.locator('#token-error').innerText(), /not valid/);
    await page.getByLabel('API token').fill(stack.token);
    await shot('sign-in', false);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Project overview' }).waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('meshhook-alerts-token')"), stack.token);
    assert.equal(await page.evaluate('localStorage.length'), 0);
    // keyboard: type the workflow id and press Enter
    await page.getByLabel('Workflow id').fill(workflowId);
    await page.getByLabel('Workflow id').press('Enter');
    await page.getByRole('heading', { name: `Alerts of ${workflowId}` }).waitFor();
  });

  it('creates a config, showing a bad template’s error beside its field', async () => {
    const hook = receiver.on('/ui-hook', () => ({ status: 200, body: 'thanks from the receiver' }));
    await page.getByRole('link', { name: 'New alert config' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Orders failures to on-call');
    await page.getByLabel('Run takes longer than a threshold').check();
    await page.getByLabel('Delay threshold (seconds)').fill('300');
    await page.getByLabel('Webhook URL').fill(`${hook}/{{ workflow.id }}`.replace('/ui-hook/{{ workflow.id }}', '/ui-hook?wf={{ workflow.id }}'));
    await page.getByRole('button', { name: 'Add header' }).click();
    await page.getByLabel('Header 1 name').fill('X-Team');
    await page.getByLabel('Header 1 value').fill('ops');
    await page.getByLabel('My own template').check();
    const template = page.getByLabel(/Payload template/);
    await template.fill(JSON.stringify({ text: '{{ workflow.name | no_such_filter }}' }));
    await page.getByRole('button', { name: 'Create alert' }).click();

    // the API's issue (config.payload.template.text) is shown beside the template field
    const fieldError = page.locator('#template-error');
    await fieldError.waitFor();
    assert.match(await fieldError.innerText(), /no_such_filter|undefined filter|invalid template/i);
    assert.equal(await template.getAttribute('aria-invalid'), 'true');
    assert.match((await template.getAttribute('aria-describedby')) ?? '', /template-error/);
    assert.equal(await fieldError.evaluate((el) => [el.previousElementSibling?.id, el.previousElementSibling?.previousElementSibling?.id].includes('template')), true, 'the error follows the template field');
    assert.match(await page.getByTestId('save-error').innerText(), /Not saved/);
    assert.equal((await stack.api('GET', `/api/alerts/config/${workflowId}`)).body.configs.length, 0, 'nothing stored');
    await shot('config-validation-error');

    // fixed: the live preview renders it with the server's renderer
    await template.fill(JSON.stringify({ text: '{{ workflow.name }} {{ condition }}: {{ error.message }}', run: '{{ run.id }}' }, null, 2));
    await page.getByTestId('preview-body').filter({ hasText: 'Orders sync failure: HTTP 500 from CRM' }).waitFor();
    assert.match(await page.getByTestId('preview-url').innerText(), new RegExp(`wf=${workflowId}$`));
    assert.match(await page.getByTestId('retry-schedule').innerText(), /Attempt 2: 1 s after attempt 1/);
    await page.getByRole('button', { name: 'Create alert' }).click();
    await page.getByTestId('secret').waitFor();
    secret = await page.locator('#secret-value').inputValue();
    assert.match(secret, /^whsec_/);
    // the secret card is at the top of the page: the UI brings it into view and focuses it
    assert.equal(await page.evaluate('document.activeElement.id'), 'secret-value');
    assert.match(await page.getByRole('status').filter({ hasText: 'Created' }).innerText(), /Copy its signing secret/);
    // what the receiver must do with it, right there
    const hint = page.getByTestId('secret').getByTestId('verify-hint');
    assert.equal(await hint.getAttribute('open'), '');
    for (const text of ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'new Webhook(', '.verify(rawBody, req.headers)', '{webhook-id}.{webhook-timestamp}.{body}']) {
      assert.ok((await hint.innerText()).includes(text), `the verification hint mentions ${text}`);
    }
    await page.getByRole('button', { name: 'Copy' }).click();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), secret);
    const { configs } = (await stack.api('GET', `/api/alerts/config/${workflowId}`)).body;
    assert.equal(configs.length, 1);
    configId = configs[0].id;
    assert.deepEqual(configs[0].conditions, [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 300 }]);
    assert.deepEqual(configs[0].webhook.headers, { 'X-Team': 'ops' });
    await shot('config-editor');
  });

  it('sends a test alert: the receiver gets it, signed, and the UI shows the outcome', async () => {
    await page.getByRole('button', { name: 'Send test alert' }).click();
    const result = page.locator('.test-result');
    await result.waitFor({ timeout: 30_000 });
    assert.equal(await result.getAttribute('data-outcome'), 'delivered');
    assert.equal(await page.getByTestId('test-status').innerText(), '200');
    assert.match(await result.innerText(), /thanks from the receiver/);
    assert.match(await result.innerText(), /webhook-signature: v1,/);
    const [req] = await receiver.waitFor('/ui-hook');
    assert.equal(req.headers['x-team'], 'ops');
    const headers = signatureHeaders(req);
    const body = new Webhook(secret).verify(req.body, headers) as { text: string };
    assert.match(body.text, /test/);
    assert.match(await result.innerText(), new RegExp(`webhook-timestamp: ${headers['webhook-timestamp']}`));
    await result.scrollIntoViewIfNeeded();
    await shot('test-alert');

    // the workflow's list shows the config's state and its last delivery
    await page.goto(`${stack.apiUrl}/#/w/${workflowId}`);
    const card = page.locator(`[data-config-id="${configId}"]`);
    await card.getByText('enabled').waitFor();
    await card.locator('.badge.delivered', { hasText: 'delivered' }).waitFor();
    await shot('configs');
  });

  it('edits an existing config: the change is saved, and the form shows it after a reload', async () => {
    const card = page.locator(`[data-config-id="${configId}"]`);
    await card.getByRole('link', { name: 'Edit' }).click();
    const name = page.getByLabel('Name', { exact: true });
    await name.waitFor();
    assert.equal(await name.inputValue(), 'Orders failures to on-call');
    assert.equal(await page.getByTestId('secret').count(), 0, 'an existing config never shows its secret');
    await name.fill('Orders failures and cancels to on-call');
    await page.getByLabel('Run takes longer than a threshold').uncheck();
    await page.getByLabel('Run is canceled').check();
    await page.getByLabel('Max attempts').fill('3');
    await page.getByLabel('First delay (ms)').fill('2000');
    // the schedule follows the fields
    await page.getByTestId('retry-schedule').filter({ hasText: 'Attempt 3: 4 s after attempt 2 (6 s after the first)' }).waitFor();
    assert.equal(await page.getByTestId('retry-schedule').locator('li').count(), 3);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();

    const [stored] = (await stack.api('GET', `/api/alerts/config/${workflowId}`)).body.configs.filter((c: { id: string }) => c.id === configId);
    assert.equal(stored.name, 'Orders failures and cancels to on-call');
    assert.deepEqual(stored.conditions, [{ type: 'failure' }, { type: 'canceled' }]);
    assert.equal(stored.retry.maxAttempts, 3);
    assert.equal(stored.retry.initialIntervalMs, 2000);
    assert.deepEqual(stored.webhook.headers, { 'X-Team': 'ops' }, 'untouched fields are kept');

    await page.reload();
    await name.waitFor();
    assert.equal(await name.inputValue(), 'Orders failures and cancels to on-call');
    assert.equal(await page.getByLabel('Run is canceled').isChecked(), true);
    assert.equal(await page.getByLabel('Run takes longer than a threshold').isChecked(), false);
    assert.equal(await page.getByLabel('Max attempts').inputValue(), '3');
    assert.equal(await page.getByLabel('Header 1 name').inputValue(), 'X-Team');
  });

  it('rotates the secret: the new one is shown once with a copy button, and the receiver verifies with either', async () => {
    const dialogs: string[] = [];
    page.once('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByTestId('secret').waitFor();
    assert.match(dialogs[0] ?? '', /new signing secret/);
    const rotated = await page.locator('#secret-value').inputValue();
    assert.match(rotated, /^whsec_/);
    assert.notEqual(rotated, secret);
    assert.match(await page.getByTestId('secret').innerText(), /shown only this once/);
    assert.equal(await page.evaluate('document.activeElement.id'), 'secret-value');
    const copy = page.getByTestId('secret').getByRole('button', { name: 'Copy' });
    await copy.click();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), rotated);
    await page.getByTestId('secret').getByRole('button', { name: 'Copied' }).waitFor();

    // during the grace period both secrets sign: the receiver can switch at its own pace
    const before = receiver.at('/ui-hook').length;
    await page.getByRole('button', { name: 'Send test alert' }).click();
    await page.locator('.test-result[data-outcome="delivered"]').waitFor({ timeout: 30_000 });
    const req = (await receiver.waitFor('/ui-hook', before + 1))[before];
    const headers = signatureHeaders(req);
    assert.equal(headers['webhook-signature'].split(' ').length, 2, headers['webhook-signature']);
    new Webhook(rotated).verify(req.body, headers);
    new Webhook(secret).verify(req.body, headers);
    assert.throws(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(req.body, headers));
    await page.getByTestId('secret').scrollIntoViewIfNeeded();
    await shot('secret-rotated', false);

    // shown once: gone after a reload
    await page.reload();
    await page.getByLabel('Name', { exact: true }).waitFor();
    assert.equal(await page.getByTestId('secret').count(), 0);
    secret = rotated;
  });

  it('explains an egress-policy refusal: while the URL is typed, on save, and on a test alert', async () => {
    const egressWorkflow = `wf_ui_egress_${uid()}`;
    await page.goto(`${stack.apiUrl}/#/w/${egressWorkflow}/new`);
    await page.getByLabel('Name', { exact: true }).fill('To a private address');
    await page.getByLabel('Webhook URL').fill(REFUSED_URL);
    // the live preview warns before any save
    const help = page.getByTestId('egress-help');
    await page.locator('[data-testid="egress-help"][data-when="preview"]').waitFor();
    assert.match(await help.innerText(), /Refused by the egress policy, a safety rule of this service \(not a problem of the receiver\): 10\.255\.255\.1 is a private address \(10\.0\.0\.0\/8\)/);
    assert.match(await help.innerText(), /cannot be saved/);
    await page.getByRole('button', { name: 'Create alert' }).click();
    await page.locator('[data-testid="egress-help"][data-when="save"]').waitFor();
    const saveHelp = await help.innerText();
    assert.match(saveHelp, /The config was not saved/);
    assert.match(saveHelp, /ALERTS_EGRESS_ALLOW=10\.255\.255\.1/);
    assert.match(saveHelp, /ALERTS_ALLOW_PRIVATE_NETWORKS=true/);
    assert.match(saveHelp, /Egress policy \(SSRF guard\)/);
    assert.equal(await page.getByLabel('Webhook URL').getAttribute('aria-invalid'), 'true');
    assert.match(await page.locator('#url-error').innerText(), /refused by the egress policy: 10\.255\.255\.1 is a private address/);
    assert.deepEqual((await stack.api('GET', `/api/alerts/config/${egressWorkflow}`)).body.configs, [], 'nothing stored');
    // an allowed receiver instead: the explanation goes as soon as the preview has checked the new URL
    await page.getByLabel('Webhook URL').fill(receiver.on('/ui-egress-ok', () => ({ status: 200 })));
    await page.getByTestId('preview-url').filter({ hasText: '/ui-egress-ok' }).waitFor();
    assert.equal(await page.getByTestId('egress-help').count(), 0);

    // a config stored before the policy was narrowed (or a name that resolved elsewhere at save):
    // its test alert is refused at delivery, and the outcome says why and what to change
    const input = alertConfigInputSchema.parse({ workflowId: egressWorkflow, name: 'Saved under a wider policy', conditions: [{ type: 'failure' }], webhook: { url: REFUSED_URL } });
    const { config } = await saveConfig(stack.service.db, stack.service.keyring, 'default', input);
    await page.goto(`${stack.apiUrl}/#/w/${egressWorkflow}`);
    const card = page.locator(`[data-config-id="${config.id}"]`);
    await card.getByRole('button', { name: 'Send test alert' }).click();
    const result = card.locator('.test-result');
    await result.waitFor({ timeout: 30_000 });
    assert.equal(await result.getAttribute('data-outcome'), 'failed');
    assert.equal(await result.getByTestId('test-status').innerText(), 'no answer');
    assert.match(await result.getByTestId('test-error').innerText(), /^refused by the egress policy: 10\.255\.255\.1 is a private address/);
    const explained = await result.getByTestId('egress-help').innerText();
    assert.match(explained, /safety rule of this service \(not a problem of the receiver\): 10\.255\.255\.1 is a private address/);
    assert.match(explained, /Nothing was sent, and it is not retried/);
    assert.match(explained, /ALERTS_EGRESS_ALLOW=10\.255\.255\.1/);
    assert.match(await result.innerText(), /Signature headers \(prepared, not sent\)/);
    assert.doesNotMatch(await result.innerText(), /Response \(start\)/);
    await card.scrollIntoViewIfNeeded();
    await shot('egress-refused');

    // the delivery's page explains it too
    await result.getByRole('link', { name: /^dlv-/ }).click();
    await page.getByTestId('delivery-status').filter({ hasText: 'failed' }).waitFor({ timeout: 20_000 });
    assert.match(await page.getByTestId('egress-help').innerText(), /ALERTS_EGRESS_ALLOW=10\.255\.255\.1/);
    const attempts = (await stack.api('GET', `/api/alerts/logs?configId=${config.id}`)).body.logs;
    assert.deepEqual(attempts.map((a: { outcome: string; httpStatus: number | null }) => [a.outcome, a.httpStatus]), [['failed', null]]);
  });

  it('shows a delivery retrying (503) and then succeeding in its timeline, updating by itself', async () => {
    // a second config on a receiver path that answers 503 (retry in 3 s) once, then 200
    const flaky = receiver.on('/ui-flaky', (n) => (n === 1 ? { status: 503, headers: { 'retry-after': '3' }, body: 'busy, try later' } : { status: 200, body: 'got it' }));
    const saved = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'Flaky receiver', conditions: [{ type: 'failure' }], webhook: { url: flaky }, retry: { maxAttempts: 5, initialIntervalMs: 1000 } },
    });
    assert.equal(saved.status, 201);
    const flakyId = saved.body.config.id;
    const runId = `run_${uid()}`;
    const sent = await stack.api('POST', '/api/events', {
      id: `evt_${uid()}`, type: 'run.failed', workflowId, runId, workflow: { name: 'Orders sync' }, error: { message: 'HTTP 500 from CRM' },
    });
    assert.equal(sent.status, 202);
    const delivery = sent.body.deliveries.find((d: { configId: string }) => d.configId === flakyId);
    flakyDeliveryId = delivery.deliveryId;
    await page.goto(`${stack.apiUrl}/#/d/${encodeURIComponent(delivery.deliveryId)}`);

    const attempts = page.getByTestId('attempts');
    await attempts.locator('[data-outcome="retrying"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId('delivery-status').innerText(), 'in_progress');
    assert.match(await attempts.innerText(), /HTTP 503/);
    await shot('delivery-retrying');
    // no reload: the page polls until the delivery has ended
    await attempts.locator('[data-outcome="delivered"]').waitFor({ timeout: 20_000 });
    await page.getByTestId('delivery-status').filter({ hasText: 'delivered' }).waitFor({ timeout: 10_000 });
    assert.equal(receiver.at('/ui-flaky').length, 2);
    assert.match(await page.getByTestId('timeline').innerText(), /attempt 2/);
    const link = page.getByRole('link', { name: /Temporal Web UI/ });
    assert.match((await link.getAttribute('href')) ?? '', new RegExp(`/workflows/${encodeURIComponent(delivery.deliveryId)}$`));
    await shot('delivery-timeline');

    // redeliver: a new delivery of the same alert
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await page.getByText('Sent again as').waitFor();
    await receiver.waitFor('/ui-flaky', 3);

    await page.goto(`${stack.apiUrl}/#/w/${workflowId}/c/${flakyId}/deliveries`);
    // both delivered (the list refreshes itself while one is under way)
    await page.locator('tbody .badge.delivered').nth(1).waitFor({ timeout: 20_000 });
    await shot('deliveries');
  });

  it('works by keyboard: labelled fields, Enter to sign in, focus on the new page’s heading, fields in order', async () => {
    // a new tab has its own (empty) session: sign in with the keyboard only
    const tab = await page.context().newPage();
    try {
      await tab.goto(`${stack.apiUrl}/`);
      await tab.getByLabel('API token').focus();
      await tab.keyboard.type(stack.token);
      await tab.keyboard.press('Enter');
      await tab.getByRole('heading', { name: 'Project overview' }).waitFor();
      assert.equal(await tab.evaluate('document.activeElement.textContent'), 'Project overview', 'focus moves to the heading');

      // a link followed with Enter lands on the next page's heading
      await tab.goto(`${stack.apiUrl}/#/w/${workflowId}`);
      const edit = tab.locator(`[data-config-id="${configId}"]`).getByRole('link', { name: 'Edit' });
      await edit.focus();
      await tab.keyboard.press('Enter');
      await tab.getByLabel('Name', { exact: true }).waitFor();
      assert.match(await tab.evaluate('document.activeElement.tagName + " " + document.activeElement.textContent'), /^H1 Edit alert/);

      // every control of the editor has a label (or an accessible name)
      // (a string: the test's TypeScript has no DOM types)
      const unlabelled = await tab.evaluate(`[...document.querySelectorAll('main input, main textarea, main select, main button, main summary')]
        .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (['BUTTON', 'SUMMARY'].includes(el.tagName) && el.textContent.trim())))
        .map((el) => el.outerHTML.slice(0, 120))`);
      assert.deepEqual(unlabelled, []);

      // Tab walks the form in reading order
      await tab.getByLabel('Name', { exact: true }).focus();
      const order: string[] = [];
      for (let i = 0; i < 8; i++) {
        await tab.keyboard.press('Tab');
        const el = 'document.activeElement';
        order.push(await tab.evaluate<string>(`${el}.labels?.[0]?.textContent.trim() || ${el}.getAttribute('aria-label') || ${el}.textContent.trim().slice(0, 40)`));
      }
      assert.deepEqual(order.slice(0, 7), ['Enabled', 'Run fails (run.failed)', 'Run succeeds (run.succeeded)', 'Run waits for a person (run.paused)', 'Run is canceled (run.canceled)', 'Run takes longer than a threshold (no finishing event in time)', 'Webhook URL']);
      assert.match(order[7], /^Template variables/);
    } finally {
      await tab.close();
    }
  });

  it('fits a narrow screen (375 px): no page is wider than the screen', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    const screens: [string, string][] = [
      [`/#/`, 'Project overview'],
      [`/#/w/${workflowId}`, `Alerts of ${workflowId}`],
      [`/#/w/${workflowId}/new`, 'New alert'],
      [`/#/w/${workflowId}/c/${configId}/deliveries`, 'Deliveries'],
      [`/#/d/${encodeURIComponent(flakyDeliveryId)}`, 'Delivery'],
      [`/#/w/${workflowId}/c/${configId}`, 'Edit alert'],
    ];
    const tooWide = () => page.evaluate<string>("document.documentElement.scrollWidth > window.innerWidth + 1 ? document.documentElement.scrollWidth + ' px wide' : ''");
    for (const [hash, heading] of screens) {
      await page.goto(`${stack.apiUrl}${hash}`);
      await page.getByRole('heading', { name: heading }).first().waitFor();
      await page.waitForTimeout(300); // lists and previews load after the heading
      assert.equal(await tooWide(), '', `${hash} scrolls sideways`);
    }
    // the editor, with a test alert's outcome and the verification snippet open
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'Orders failures and cancels to on-call');
    await page.getByRole('button', { name: 'Send test alert' }).click();
    const result = page.locator('.test-result[data-outcome="delivered"]');
    await result.waitFor({ timeout: 30_000 });
    await result.getByText('How your receiver checks the signature').click();
    assert.equal(await tooWide(), '', 'the test alert outcome scrolls sideways');
    await result.scrollIntoViewIfNeeded();
    await page.evaluate("document.querySelector('.test-result').scrollIntoView()");
    await shot('narrow-test-alert', false);
    await page.getByLabel('Name', { exact: true }).scrollIntoViewIfNeeded();
    await page.evaluate('window.scrollTo(0, 0)');
    await shot('narrow-editor', false);
    // a fresh tab's sign-in page
    const tab = await page.context().newPage();
    try {
      await tab.setViewportSize({ width: 375, height: 812 });
      await tab.goto(`${stack.apiUrl}/`);
      await tab.getByLabel('API token').waitFor();
      assert.equal(await tab.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1'), true, 'sign-in scrolls sideways');
    } finally {
      await tab.close();
    }
  });
});
