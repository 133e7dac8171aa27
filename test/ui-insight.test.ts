import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import { configStatsSchema, overviewSchema } from '../api/schemas';
import { Receiver, type Reply } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The web UI's insight views in Debian's Chromium, headless, against the shared test stack, with
 * real deliveries to real receivers on 127.0.0.1: the project overview as the landing view (every
 * workflow with alerts, its configs, health and last delivery), a config's success-rate and latency
 * charts matching the stats API, and the alerts held while a 410 keeps a config disabled, re-enabled
 * once with "send them" (the receiver gets them) and once with "discard them" (the list empties).
 * Screenshots: docs/screenshots/overview.png, config-insight.png, held-alerts.png (docs/web-ui.md).
 */

const SHOTS = path.join(__dirname, '..', 'docs', 'screenshots');
const uid = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** quick retries: a failed delivery stops after its second attempt */
const QUICK_RETRY = { maxAttempts: 2, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 200, maxDurationMs: 30_000 };

interface Started {
  deliveryId: string;
  configId: string;
}

describe('web UI insight: overview, charts, held alerts (Chromium)', function () {
  this.timeout(180_000);
  let stack: TestStack;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  let token = '';
  const projectId = `insight_${uid()}`;
  const workflowId = `wf_orders_${uid()}`;
  const quietWorkflowId = `wf_invoices_${uid()}`;
  const ids = { steady: '', mixed: '', gone: '', quiet: '' };
  /** how the /gone path answers now */
  let goneAnswer = 410;

  const api = (method: string, p: string, body?: unknown) => stack.api(method, p, body, token);
  const shot = async (name: string) => {
    await page.waitForTimeout(150); // let the last render settle
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };

  async function saveConfig(wf: string, name: string, url: string, condition = 'failure'): Promise<string> {
    const res = await api('POST', '/api/alerts/config', { config: { workflowId: wf, name, conditions: [{ type: condition }], webhook: { url }, retry: QUICK_RETRY } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.config.id;
  }

  async function sendEvent(type: 'run.failed' | 'run.canceled', wf: string, runId: string): Promise<{ deliveries: Started[]; held?: unknown[] }> {
    const res = await api('POST', '/api/events', { id: `evt_${uid()}`, type, workflowId: wf, runId, workflow: { name: 'Orders sync' }, error: { message: 'HTTP 500 from CRM' } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body;
  }

  /** Waits until every delivery has ended (delivered or failed), with a deadline. */
  async function waitEnded(deliveryIds: string[], timeoutMs = 45_000) {
    const deadline = Date.now() + timeoutMs;
    for (const id of deliveryIds) {
      for (;;) {
        const res = await api('GET', `/api/alerts/deliveries/${encodeURIComponent(id)}`);
        if (res.status === 200 && ['delivered', 'failed'].includes(res.body.status)) break;
        if (Date.now() > deadline) throw new Error(`delivery ${id} did not end within ${timeoutMs} ms (${res.status} ${JSON.stringify(res.body).slice(0, 200)})`);
        await sleep(200);
      }
    }
  }

  /** Waits until `check` passes on the overview's config, with a deadline. */
  async function waitConfig(configId: string, check: (c: any) => boolean, what: string, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await api('GET', '/api/alerts/overview');
      const config = body.workflows.flatMap((w: any) => w.configs).find((c: any) => c.id === configId);
      if (config && check(config)) return config;
      if (Date.now() > deadline) throw new Error(`config ${configId}: ${what} not reached within ${timeoutMs} ms: ${JSON.stringify(config)}`);
      await sleep(200);
    }
  }

  /** Waits until `check` passes on the project's operator alerts, with a deadline. */
  async function waitOperatorAlerts(check: (alerts: any[]) => boolean, what: string, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await api('GET', '/api/operator/alerts?limit=50');
      if (res.status === 200 && check(res.body.alerts)) return res.body.alerts;
      if (Date.now() > deadline) throw new Error(`operator alerts: ${what} not reached within ${timeoutMs} ms: ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`);
      await sleep(200);
    }
  }

  before(async function () {
    this.timeout(5 * 60_000);
    execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    fs.mkdirSync(SHOTS, { recursive: true });
    [stack, receiver] = await Promise.all([useStack(), Receiver.start()]);
    // a project of its own: its overview holds this test's workflows only
    token = await stack.tokenFor(projectId);
    // and its own operator webhook: the 410 below raises config.disabled, the failure delivery.exhausted
    const settings = await api('PUT', '/api/project/settings', { operatorWebhook: { url: receiver.on('/operator', () => ({ status: 200 })) } });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));

    // steady: answers 200 after a short wait (a latency worth drawing)
    const steady = receiver.on('/steady', (): Reply => ({ status: 200, after: sleep(25) }));
    // mixed: a run whose id says "fail" gets 500 on every attempt (failed for good after one retry), others 200
    // (answering in 5 to 60 ms, by the request's number: latencies worth drawing)
    const mixed = receiver.on('/mixed', (n, req): Reply => (req.body.includes('run_fail') ? { status: 500, body: 'CRM down' } : { status: 200, after: sleep([5, 30, 12, 60, 8, 20][n % 6]) }));
    const gone = receiver.on('/gone', (): Reply => ({ status: goneAnswer }));
    ids.steady = await saveConfig(workflowId, 'Orders failures to on-call', steady);
    ids.mixed = await saveConfig(workflowId, 'Orders failures to the CRM', mixed);
    // on cancels only: the failures above never reach it
    ids.gone = await saveConfig(workflowId, 'Orders cancels to the old pager', gone, 'canceled');
    ids.quiet = await saveConfig(quietWorkflowId, 'Invoice failures to finance', receiver.on('/quiet', () => ({ status: 200 })));

    // real deliveries, one run after the other: 9 to steady; to mixed 6 delivered and 3 failed for good (the last
    // one too: mixed is failing); then a cancel's 410 disables gone. Mixed's attempt rows are aged by the hours
    // beside each run (the test's clock), so that its chart has a day to draw.
    const started: string[] = [];
    const runs: [string, number][] = [['run_ok_1', 20], ['run_fail_1', 17], ['run_ok_2', 14], ['run_ok_3', 14], ['run_fail_2', 9], ['run_ok_4', 5], ['run_ok_5', 2], ['run_ok_6', 0], ['run_fail_3', 0]];
    for (const [runId, hoursAgo] of runs) {
      const { deliveries } = await sendEvent('run.failed', workflowId, runId);
      started.push(...deliveries.map((d) => d.deliveryId));
      const toMixed = deliveries.filter((d) => d.configId === ids.mixed).map((d) => d.deliveryId);
      assert.equal(toMixed.length, 1);
      await waitEnded(toMixed);
      await stack.service.db.query(`UPDATE alert_logs SET created_at = created_at - make_interval(hours => $2::int) WHERE delivery_id = $1`, [toMixed[0], hoursAgo]);
    }
    started.push(...(await sendEvent('run.canceled', workflowId, 'run_cancel_0')).deliveries.map((d) => d.deliveryId));
    await waitEnded(started);
    await waitConfig(ids.gone, (c) => !c.enabled, 'disabled by the 410');
    const sent = (alerts: any[], type: string) => alerts.filter((a) => a.type === type && a.status === 'delivered').length;
    await waitOperatorAlerts((alerts) => sent(alerts, 'config.disabled') === 1 && sent(alerts, 'delivery.exhausted') === 4, 'config.disabled and 4 delivery.exhausted sent');

    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('pageerror', (err) => console.error('[browser]', err));
  });

  after(async () => {
    await browser?.close();
    await receiver?.close();
  });

  it('lands on the project overview after sign-in: every workflow with alerts, its configs, health and last delivery', async () => {
    await page.goto(`${stack.apiUrl}/`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Project overview' }).waitFor();

    const workflows = page.locator('[data-workflow-id]');
    await workflows.first().waitFor();
    assert.deepEqual(await workflows.evaluateAll((els) => els.map((e) => e.getAttribute('data-workflow-id'))), [quietWorkflowId, workflowId].sort());
    const row = (id: string) => page.locator(`[data-config-id="${id}"]`);
    const badge = (id: string) => row(id).getByTestId('health-badge');
    assert.equal(await badge(ids.steady).innerText(), 'healthy');
    assert.equal(await badge(ids.mixed).innerText(), 'failing (1)');
    assert.match(await badge(ids.gone).innerText(), /^disabled/);
    assert.equal(await badge(ids.quiet).innerText(), 'healthy');
    assert.match(await row(ids.gone).innerText(), /410 Gone/);
    // last deliveries
    assert.equal(await row(ids.steady).getByTestId('last-status').innerText(), 'delivered');
    assert.equal(await row(ids.mixed).getByTestId('last-status').innerText(), 'failed');
    assert.equal(await row(ids.gone).getByTestId('last-status').innerText(), 'failed');
    assert.match(await row(ids.quiet).innerText(), /No delivery yet/);
    // the page agrees with the API it reads, whose answer is the one described
    const { body } = await api('GET', '/api/alerts/overview');
    overviewSchema.parse(body);
    assert.deepEqual(body.workflows.map((w: any) => [w.workflowId, w.configs.map((c: any) => c.name)]), [
      [workflowId, ['Orders failures to on-call', 'Orders failures to the CRM', 'Orders cancels to the old pager']],
      [quietWorkflowId, ['Invoice failures to finance']],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
    assert.match(await page.getByTestId('overview-summary').innerText(), /2 workflows · 4 alert configs · 1 failing · 1 disabled/);
    // the operator panel: what the service raised about itself, and the project's operator webhook
    const operator = page.getByTestId('operator-alerts');
    await operator.locator('li[data-type="config.disabled"][data-status="delivered"]').waitFor();
    assert.match(await operator.locator('li[data-type="config.disabled"]').innerText(), /config disabled: Orders cancels to the old pager/);
    assert.deepEqual(
      (await operator.locator('li[data-type="delivery.exhausted"]').allInnerTexts()).map((t) => t.match(/delivery failed for good: ([^\n]+?)\s*delivery/)?.[1]).sort(),
      ['Orders cancels to the old pager', 'Orders failures to the CRM', 'Orders failures to the CRM', 'Orders failures to the CRM'],
    );
    assert.equal(await operator.getByLabel('Operator webhook URL').inputValue(), receiver.url + '/operator');
    await shot('overview');
  });

  it('sets the project’s operator webhook from the overview', async () => {
    const operator = page.getByTestId('operator-alerts');
    const url = receiver.on('/operator-new', () => ({ status: 200 }));
    await operator.getByLabel('Operator webhook URL').fill(url);
    await operator.getByRole('button', { name: 'Save' }).click();
    await operator.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    assert.equal((await api('GET', '/api/project/settings')).body.operatorWebhook.url, url);
    // a refused URL is named beside the field
    await operator.getByLabel('Operator webhook URL').fill('http://10.255.255.1/ops');
    await operator.getByRole('button', { name: 'Save' }).click();
    await operator.locator('#operator-error').filter({ hasText: /egress policy/ }).waitFor();
    assert.equal((await api('GET', '/api/project/settings')).body.operatorWebhook.url, url, 'not saved');
    await page.reload();
    await page.getByRole('heading', { name: 'Project overview' }).waitFor();
  });

  it('opens a config from the overview: its success-rate and latency charts draw the stats API’s numbers', async () => {
    await page.locator(`[data-config-id="${ids.mixed}"]`).getByRole('link', { name: 'Orders failures to the CRM' }).click();
    await page.getByRole('heading', { name: /Orders failures to the CRM/ }).waitFor();
    const bars = page.getByTestId('success-bar');
    await bars.first().waitFor();
    const readBars = () =>
      bars.evaluateAll((els) =>
        els.map((e) => ({ start: e.getAttribute('data-start'), delivered: Number(e.getAttribute('data-delivered')), failed: Number(e.getAttribute('data-failed')), retried: Number(e.getAttribute('data-retried')), ok: e.querySelector('.bar-ok')?.getAttribute('height') ?? null })),
      );
    let drawn = await readBars();
    let stats = (await api('GET', `/api/alerts/config/by-id/${ids.mixed}/stats?hours=24`)).body;
    if (stats.from !== drawn[0].start) {
      // an hour began between the page's request and this one: both again, in the same hour now
      await page.getByRole('button', { name: 'Refresh' }).click();
      await page.locator(`[data-testid="success-bar"][data-start="${stats.buckets[23].start}"]`).waitFor();
      drawn = await readBars();
    }
    stats = (await api('GET', `/api/alerts/config/by-id/${ids.mixed}/stats?hours=24`)).body;
    configStatsSchema.parse(stats);
    assert.equal(stats.buckets.length, 24);
    assert.deepEqual({ ...stats.totals, latencyMs: undefined }, { delivered: 6, failed: 3, retried: 3, attempts: 12, successRate: 2 / 3, latencyMs: undefined });
    assert.ok(stats.totals.latencyMs.p50 > 0 && stats.totals.latencyMs.p95 >= stats.totals.latencyMs.p50, JSON.stringify(stats.totals));
    // the hours the runs were aged into
    assert.deepEqual(
      stats.buckets.flatMap((b: any, i: number) => (b.attempts ? [[23 - i, b.delivered, b.failed]] : [])),
      [[20, 1, 0], [17, 0, 1], [14, 2, 0], [9, 0, 1], [5, 1, 0], [2, 1, 0], [0, 1, 1]],
    );
    assert.deepEqual(
      drawn.map(({ ok: _ok, ...b }) => b),
      stats.buckets.map((b: any) => ({ start: b.start, delivered: b.delivered, failed: b.failed, retried: b.retried })),
    );
    // the green part of an hour's bar is its success rate of the full height (plotted 138 px)
    for (const [i, b] of stats.buckets.entries()) {
      if (b.successRate === null) assert.equal(drawn[i].ok, null, `hour ${b.start} has no bar`);
      else assert.ok(Math.abs(Number(drawn[i].ok) - 138 * b.successRate) < 0.01, `hour ${b.start}: ${drawn[i].ok} px for ${b.successRate}`);
    }
    const points = await page.getByTestId('latency-point').evaluateAll((els) => els.map((e) => ({ start: e.getAttribute('data-start'), p50: Number(e.getAttribute('data-p50')), p95: Number(e.getAttribute('data-p95')) })));
    assert.deepEqual(points, stats.buckets.filter((b: any) => b.latencyMs.p50 !== null).map((b: any) => ({ start: b.start, ...b.latencyMs })));
    assert.ok(points.length >= 1);
    assert.match(await page.getByTestId('stats-totals').innerText(), /67 % delivered · 6 delivered, 3 failed, 3 attempts retried/);
    assert.match((await page.getByTestId('success-chart').getAttribute('aria-labelledby')) ?? '', /title/);
    assert.equal(await page.getByTestId('health-badge').innerText(), 'failing (1)');
    await shot('config-insight');
  });

  it('lists the alerts held while the 410 keeps a config disabled; re-enabling with "send them" delivers them oldest first', async () => {
    const before = receiver.at('/gone').length;
    const runs = ['run_held_1', 'run_held_2', 'run_held_3'];
    for (const runId of runs) {
      const res = await sendEvent('run.canceled', workflowId, runId);
      assert.deepEqual(res.deliveries, [], 'nothing is sent to a disabled config');
    }
    await waitConfig(ids.gone, (c) => c.health.heldCount === 3, '3 held alerts');

    await page.goto(`${stack.apiUrl}/`);
    await page.locator(`[data-config-id="${ids.gone}"]`).getByRole('link', { name: 'Orders cancels to the old pager' }).click();
    const held = page.getByTestId('held-alerts');
    await held.getByTestId('held-list').waitFor();
    assert.equal(await held.getByTestId('held-count').innerText(), '3');
    assert.deepEqual(await held.locator('tbody tr td:nth-child(3)').allInnerTexts(), runs, 'oldest first');
    assert.match(await held.innerText(), /410 Gone/);
    await held.scrollIntoViewIfNeeded();

    // the receiver is fixed; re-enable and send them
    goneAnswer = 200;
    await held.getByRole('button', { name: 'Re-enable…' }).click();
    const dialog = page.getByRole('dialog', { name: /Re-enable/ });
    await dialog.waitFor();
    assert.equal(await dialog.getByLabel(/Send them \(oldest first/).isChecked(), true, 'send is the default');
    // the screen as the user sees it: the dialog over the held list (a full-page picture would end the backdrop at the fold)
    await page.evaluate('window.scrollTo(0, document.body.scrollHeight)');
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(SHOTS, 'held-alerts.png') });
    await dialog.getByRole('button', { name: 'Re-enable' }).click();
    await page.getByTestId('enable-result').filter({ hasText: '3 held alerts sent' }).waitFor();
    await held.getByTestId('held-empty').waitFor();
    const got = await receiver.waitFor('/gone', before + 3);
    const sent = got.slice(before).map((r) => JSON.parse(r.body).run.id);
    assert.deepEqual([...sent].sort(), runs, JSON.stringify(sent));
    await waitConfig(ids.gone, (c) => c.enabled && c.health.heldCount === 0, 'enabled with nothing held');
    assert.equal(await page.getByTestId('health-badge').innerText(), 'healthy');
  });

  it('re-enabling with "discard them" empties the list and sends nothing', async () => {
    goneAnswer = 410;
    const { deliveries } = await sendEvent('run.canceled', workflowId, 'run_gone_again');
    await waitEnded(deliveries.filter((d) => d.configId === ids.gone).map((d) => d.deliveryId));
    await waitConfig(ids.gone, (c) => !c.enabled, 'disabled by the next 410');
    for (const runId of ['run_discard_1', 'run_discard_2']) await sendEvent('run.canceled', workflowId, runId);
    await waitConfig(ids.gone, (c) => c.health.heldCount === 2, '2 held alerts');
    const before = receiver.at('/gone').length;

    await page.reload();
    const held = page.getByTestId('held-alerts');
    await held.getByTestId('held-list').waitFor();
    assert.equal(await held.getByTestId('held-count').innerText(), '2');
    // a modal dialog: focus starts on the chosen option, Escape closes it and changes nothing
    const dialog = page.getByRole('dialog', { name: /Re-enable/ });
    await held.getByRole('button', { name: 'Re-enable…' }).click();
    await dialog.waitFor();
    assert.equal(await page.evaluate('document.activeElement.value'), 'send');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await api('GET', `/api/alerts/config/by-id/${ids.gone}/held`)).body.count, 2);
    await held.getByRole('button', { name: 'Re-enable…' }).click();
    await dialog.getByLabel('Discard them').check();
    await dialog.getByRole('button', { name: 'Re-enable' }).click();
    await page.getByTestId('enable-result').filter({ hasText: '2 held alerts discarded' }).waitFor();
    await held.getByTestId('held-empty').waitFor();
    assert.equal(await held.getByTestId('held-count').innerText(), '0');
    const { body } = await api('GET', `/api/alerts/config/by-id/${ids.gone}/held`);
    assert.deepEqual([body.count, body.held], [0, []]);
    await sleep(1_000); // a discarded alert would have been sent by now
    assert.equal(receiver.at('/gone').length, before, 'nothing sent');
  });

  it('labels every control, and the charts say what they show', async () => {
    const unlabelled = `[...document.querySelectorAll('main input, main textarea, main select, main button, main summary')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (['BUTTON', 'SUMMARY'].includes(el.tagName) && el.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 120))`;
    await page.goto(`${stack.apiUrl}/#/`);
    await page.getByTestId('operator-alerts').getByLabel('Operator webhook URL').waitFor();
    assert.deepEqual(await page.evaluate(unlabelled), []);
    await page.goto(`${stack.apiUrl}/#/w/${workflowId}/c/${ids.mixed}/insight`);
    await page.getByTestId('held-alerts').waitFor();
    assert.deepEqual(await page.evaluate(unlabelled), []);
    assert.equal(await page.evaluate('document.activeElement.tagName + " " + document.activeElement.textContent.trim()'), 'H1 Orders failures to the CRM insight', 'focus on the heading');
    for (const chart of ['success-chart', 'latency-chart']) {
      const svg = page.getByTestId(chart);
      assert.equal(await svg.getAttribute('role'), 'img');
      const title = await page.locator(`#${await svg.getAttribute('aria-labelledby')}`).textContent();
      assert.match(title ?? '', chart === 'success-chart' ? /^Success rate per hour: 67 % of 9 deliveries delivered over the last 24 hours$/ : /^Attempt latency per hour: p50 \d+ ms, p95 \d+ ms over the last 24 hours$/);
    }
  });

  it('fits a narrow screen (390 px): the overview and the insight page are no wider than the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const tooWide = () => page.evaluate<string>("document.documentElement.scrollWidth > window.innerWidth + 1 ? document.documentElement.scrollWidth + ' px wide' : ''");
    for (const [hash, heading] of [['/#/', 'Project overview'], [`/#/w/${workflowId}/c/${ids.mixed}/insight`, /Orders failures to the CRM/]] as const) {
      await page.goto(`${stack.apiUrl}${hash}`);
      await page.getByRole('heading', { name: heading }).first().waitFor();
      await page.locator('[data-workflow-id], [data-testid="success-chart"]').first().waitFor();
      assert.equal(await tooWide(), '', `${hash} scrolls sideways`);
    }
    // the chart follows the width of its column
    const width = await page.getByTestId('success-chart').evaluate((svg) => svg.getBoundingClientRect().width);
    assert.ok(width > 200 && width <= 390, String(width));
    await page.setViewportSize({ width: 1280, height: 900 });
  });
});
