/**
 * `node --import tsx bench/store-cost.ts`: what the store costs one alert on the embedded PGlite,
 * statement by statement, without Temporal or HTTP: the API's token lookup and config match, then
 * the first attempt's three statements (count the attempt, load the config, log it and finish),
 * for STORE_COST_ALERTS alerts (default 1000) in a temp directory. Prints ms per statement and
 * the process CPU per alert; then as many watched runs that finish in time (a delay watch opened, then
 * its run's finish: the watch-intake figure without HTTP), ms per call and CPU per run.
 */
import fs from 'node:fs';
import { openPglite } from '../store/db';
import { migrate } from '../store/migrate';
import { parseKeyring, newKeySpec } from '../lib/crypto';
import { saveConfig, findConfig, enabledConfigsFor } from '../store/configs';
import { logAttempt, startFirstAttempt } from '../store/deliveries';
import { createToken, projectForToken } from '../store/tokens';
import { finishWatch, openWatch } from '../store/watches';
(async () => {
  const db = await openPglite(fs.mkdtempSync('/tmp/st-'));
  await migrate(db);
  const keyring = parseKeyring(newKeySpec());
  const token = await createToken(db, 'default');
  const { config } = await saveConfig(db, keyring, 'default', { workflowId: 'wf', name: 'x', conditions: [{ type: 'failure' }], webhook: { url: 'http://127.0.0.1:9/x', headers: {}, timeoutMs: 5000 }, payload: { template: null }, retry: { maxAttempts: 8, initialIntervalMs: 1000, backoffCoefficient: 2, maxIntervalMs: 3600000, maxDurationMs: 86400000 }, enabled: true } as any) as any;
  const t: Record<string, number> = {};
  const time = async (k: string, f: () => Promise<unknown>) => { const a = performance.now(); await f(); t[k] = (t[k] ?? 0) + performance.now() - a; };
  const N = Number(process.env.STORE_COST_ALERTS ?? 1000);
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const ref = { deliveryId: `dlv-${i}`, projectId: 'default', configId: config.id, workflowId: 'wf', runId: 'r', eventId: `e${i}`, condition: 'failure' as const };
    const event = { id: `e${i}`, type: 'run.failed', workflowId: 'wf', runId: 'r', occurredAt: new Date().toISOString() } as any;
    await time('token', () => projectForToken(db, token));
    await time('match', () => enabledConfigsFor(db, 'default', 'wf'));
    await time('start', () => startFirstAttempt(db, keyring, ref, event, { url: 'https://hooks.example.com/a', headers: {}, body: '{"text":"failed"}' }));
    await time('findConfig', () => findConfig(db, keyring, 'default', config.id));
    await time('finish', () => logAttempt(db, ref, { attempt: 1, outcome: 'delivered', httpStatus: 200, durationMs: 3, responseSnippet: 'ok', signatureHeaders: { 'webhook-id': 'x', 'webhook-timestamp': '1', 'webhook-signature': 'v1,abc' } }, { status: 'delivered', error: null }));
  }
  const c = process.cpuUsage(c0);
  for (const [k, v] of Object.entries(t)) console.log(k.padEnd(12), (v / N).toFixed(3), 'ms');
  console.log('cpu per alert', ((c.user + c.system) / 1000 / N).toFixed(2), 'ms');
  // a watched run that finishes in time (bench/watch-intake.ts without HTTP): its run.started's watch, then its finish
  const delay = await saveConfig(db, keyring, 'default', { workflowId: 'wf_w', name: 'w', conditions: [{ type: 'delay', thresholdSeconds: 60 }], webhook: { url: 'http://127.0.0.1:9/x', headers: {}, timeoutMs: 5000 }, payload: { template: null }, retry: { maxAttempts: 8, initialIntervalMs: 1000, backoffCoefficient: 2, maxIntervalMs: 3600000, maxDurationMs: 86400000 }, enabled: true } as any) as any;
  const w: Record<string, number> = {};
  const timeW = async (k: string, f: () => Promise<unknown>) => { const a = performance.now(); await f(); w[k] = (w[k] ?? 0) + performance.now() - a; };
  const w0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const ref = { deliveryId: `dlv-w-${i}`, projectId: 'default', configId: delay.config.id, workflowId: 'wf_w', runId: `r${i}`, eventId: `ew${i}`, condition: 'delay' as const };
    const nowMs = Date.now();
    const started = { id: `ew${i}`, type: 'run.started', workflowId: 'wf_w', runId: `r${i}`, occurredAt: new Date(nowMs).toISOString() } as any;
    const done = { id: `ewd${i}`, type: 'run.succeeded', workflowId: 'wf_w', runId: `r${i}`, occurredAt: new Date(nowMs + 1).toISOString() } as any;
    await timeW('openWatch', () => openWatch(db, keyring, ref, started, nowMs + 60_000, nowMs));
    await timeW('finishWatch', () => finishWatch(db, keyring, ref, done, nowMs + 1));
  }
  const cw = process.cpuUsage(w0);
  for (const [k, v] of Object.entries(w)) console.log(k.padEnd(12), (v / N).toFixed(3), 'ms');
  console.log('cpu per watched run', ((cw.user + cw.system) / 1000 / N).toFixed(2), 'ms');
  await db.close();
})();
