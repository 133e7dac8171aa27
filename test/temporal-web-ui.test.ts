import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import { devServerPids } from './support/dev-server-processes';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The Temporal Web UI of the embedded default, in Debian's Chromium (headless): out of the box it
 * decodes a delivery's payloads through the API's codec endpoint, so an operator reads the workflow's
 * input (the event) and result in clear text, with no Codec Server setting of their own.
 */

const CODEC_ERROR = /Codec Server could not connect/i;
const uid = () => randomBytes(4).toString('hex');

describe('Temporal Web UI of the embedded default (Chromium)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  const codecCalls: { url: string; status: number; method: string }[] = [];

  before(async function () {
    this.timeout(5 * 60_000);
    [stack, receiver] = await Promise.all([useStack(), Receiver.start()]);
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    page.on('response', (res) => {
      if (new URL(res.url()).pathname.startsWith('/codec')) codecCalls.push({ url: res.url(), status: res.status(), method: res.request().method() });
    });
  });
  after(async () => {
    await browser?.close();
    await receiver?.close();
  });

  it('shows a delivery’s input and result decoded, without a Codec Server setting', async () => {
    const marker = `seen-in-the-web-ui-${uid()}`;
    const eventId = `evt_webui_${uid()}`;
    const workflowId = `wf_webui_${uid()}`;
    const created = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'Temporal UI check', conditions: [{ type: 'failure' }], webhook: { url: receiver.on(`/${uid()}`, () => ({ status: 200 })) } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const sent = await stack.api('POST', '/api/events', { id: eventId, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'HTTP 500 from CRM' }, data: { marker } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const [{ deliveryId }] = sent.body.deliveries as { deliveryId: string }[];
    const result = await stack.service.temporal.client.workflow.getHandle(deliveryId).result();
    assert.equal(result.status, 'delivered');

    const uiUrl = stack.service.temporalUiUrl!;
    await page.goto(`${uiUrl}/namespaces/${stack.service.temporal.namespace}/workflows/${encodeURIComponent(deliveryId)}`);
    // the decoded input (the event), or the UI's codec error: whichever shows first
    await page.waitForFunction(
      ([expected, error]) => {
        const { innerText } = (globalThis as unknown as { document: { body: { innerText: string } } }).document.body; // runs in the page
        return innerText.includes(expected) || new RegExp(error, 'i').test(innerText);
      },
      [marker, CODEC_ERROR.source],
      { timeout: 60_000 },
    );
    const text = await page.locator('body').innerText();
    assert.doesNotMatch(text, CODEC_ERROR, `the Temporal UI could not reach the codec endpoint; its calls: ${JSON.stringify(codecCalls.map((c) => ({ ...c, url: new URL(c.url).pathname.split('/').slice(-1)[0] })))}`);
    assert.ok(text.includes(marker), 'the event data of the workflow input is in clear text');
    assert.ok(text.includes(eventId), 'the event id is in clear text');
    assert.doesNotMatch(text, /binary\/encrypted/, 'no payload is left encrypted on the page');
    assert.match(text, /"status":\s*"delivered"/, 'the result is decoded');

    // the UI called <endpoint>/decode (with ?preserveStorageRefs=true) from its own origin, a CORS request, and every call succeeded
    const decodes = codecCalls.filter((c) => c.method === 'POST' && new URL(c.url).pathname.endsWith('/decode'));
    assert.ok(decodes.length > 0, 'the UI asked the codec endpoint to decode');
    assert.deepEqual([...new Set(decodes.map((c) => c.status))], [200]);
  });

  it('hands the UI its codec endpoint, token included, in a 0600 file, not on the dev server’s command line', () => {
    const [pid] = devServerPids(stack.dataDir);
    assert.ok(pid, 'the stack runs a dev server');
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.ok(!argv.includes(stack.token), 'the token is not in the command line (ps shows it to every user)');
    const envFile = path.join(stack.dataDir, 'temporal-cli-env.yaml');
    assert.ok(argv.split('\0').includes(envFile));
    assert.equal(fs.statSync(envFile).mode & 0o777, 0o600);
    assert.ok(fs.readFileSync(envFile, 'utf8').includes(`/codec/${stack.token}`));
  });
});
