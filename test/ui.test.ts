import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The web UI (ui/, served by the API at /) driven in Debian's Chromium, headless, against the shared
 * test stack: sign in, create a config, a validation error beside its field, a test alert the
 * receiver gets (and verifies), and a delivery that retries and then succeeds in its timeline. The
 * main screens are saved to docs/screenshots/ (the README shows them).
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.join(__dirname, '..', 'docs', 'screenshots');
const uid = () => randomBytes(4).toString('hex');

describe('web UI (Chromium)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  const workflowId = `wf_ui_${uid()}`;
  let configId = '';
  let secret = '';

  const shot = async (name: string, fullPage = true) => {
    await page.waitForTimeout(150); // let the last render settle
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
  };

  before(async function () {
    this.timeout(5 * 60_000);
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not at ${CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH`);
    }
    // the UI as npm install / npm start build it (a no-op when ui/dist is up to date)
    execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    fs.mkdirSync(SHOTS, { recursive: true });
    [stack, receiver] = await Promise.all([useStack(), Receiver.start()]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
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
    await page.getByRole('heading', { name: 'Choose a MeshHook workflow' }).waitFor();
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
    const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) };
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

  it('works on a narrow screen and by keyboard', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${stack.apiUrl}/#/w/${workflowId}/c/${configId}`);
    await page.getByLabel('Name', { exact: true }).waitFor();
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'Orders failures to on-call');
    // nothing wider than the screen
    assert.equal(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1'), true, 'no horizontal scrolling');
    // Tab reaches the form's fields in order, starting at the header's links
    await page.getByLabel('Name', { exact: true }).focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.type'), 'checkbox');
    await shot('narrow-editor', false);
  });
});
