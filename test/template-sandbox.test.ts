import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { AlertsError } from '../lib/errors';
import { buildTemplateContext } from '../lib/render';
import { TemplateError } from '../lib/templates';
import { processCpuMs, renderAlertSandboxed, SANDBOX_LIMITS, templateRendererPids } from '../runtime/template-sandbox';

/**
 * The template renderer processes (runtime/template-sandbox.ts): whatever ends a renderer (an abort
 * of V8, a heap exhausted, a signal) fails the one alert it was rendering, as a TemplateError, and the
 * next alert renders in a fresh renderer. Real child processes, killed for real.
 */
const context = buildTemplateContext(
  { id: 'evt_1', type: 'run.failed', occurredAt: '2026-11-29T10:00:00Z', workflowId: 'wf_sandbox', runId: 'run_1', error: { message: 'boom' } },
  { id: 'cfg_1', name: 'Sandbox' },
  'failure',
  'dlv-cfg_1-evt_1',
);
const config = (template: unknown, url = 'https://hooks.example.com/{{ workflow.id }}') => ({ webhook: { url, headers: { 'X-Run': '{{ run.id }}' }, timeoutMs: 10_000 }, payload: { template } });
// a render that takes a while but stays inside liquid's own limits (per string 50 ms, per alert 250 ms)
const slow = Array.from({ length: 4 }, () => '{% for a in (1..400) %}{% for b in (1..100) %}{% endfor %}{% endfor %}done');

describe('template renderer processes', function () {
  this.timeout(60_000);

  it('renders URL, headers and body as lib/render.ts does', async () => {
    const rendered = await renderAlertSandboxed(config({ text: '{{ workflow.id }}: {{ error.message }}', n: '{{ run.durationMs }}' }) as never, context);
    assert.deepEqual(rendered, { url: 'https://hooks.example.com/wf_sandbox', headers: { 'X-Run': 'run_1' }, body: '{"text":"wf_sandbox: boom","n":null}' });
  });

  it('answers a failing template with its TemplateError', async () => {
    await assert.rejects(renderAlertSandboxed(config({ a: '{% for i in (1..100000000) %}x{% endfor %}' }) as never, context), (err: Error) => err instanceof TemplateError && /payload\.template: .*memory alloc limit exceeded/.test(err.message));
  });

  it('fails only the alert whose renderer aborted, and renders the next one in a new renderer', async () => {
    // warm every renderer, then hold each one busy with a slow render and abort them all mid-render (SIGTRAP: how V8 ends on a fatal error)
    await Promise.all(Array.from({ length: SANDBOX_LIMITS.processes * 2 }, () => renderAlertSandboxed(config({ a: 'warm' }) as never, context)));
    const before = templateRendererPids();
    assert.equal(before.length, SANDBOX_LIMITS.processes);
    const inFlight = Array.from({ length: SANDBOX_LIMITS.processes }, () => renderAlertSandboxed(config({ a: slow }) as never, context).then(() => 'rendered', (err: Error) => err));
    const queued = renderAlertSandboxed(config({ a: 'queued {{ condition }}' }) as never, context);
    await new Promise((r) => setTimeout(r, 20));
    for (const pid of before) process.kill(pid, 'SIGTRAP');
    const outcomes = await Promise.all(inFlight);
    for (const outcome of outcomes) {
      assert.ok(outcome instanceof TemplateError, String(outcome));
      assert.match(outcome.message, /rendering this alert stopped its template renderer \(SIGTRAP\): a template may use at most \d+ MiB of memory/);
    }
    assert.equal(JSON.parse((await queued).body).a, 'queued failure', 'the alert queued behind them renders in a new renderer');
    const after = templateRendererPids();
    assert.ok(after.length >= 1 && after.every((pid) => !before.includes(pid)), `new renderers: ${before} -> ${after}`);
  });

  it('does not blame the template for a renderer stopped from outside: its alert may be rendered again', async () => {
    await Promise.all(Array.from({ length: SANDBOX_LIMITS.processes * 2 }, () => renderAlertSandboxed(config({ a: 'warm' }) as never, context)));
    const pids = templateRendererPids();
    const inFlight = Array.from({ length: SANDBOX_LIMITS.processes }, () => renderAlertSandboxed(config({ a: slow }) as never, context).then(() => 'rendered', (err: Error) => err));
    await new Promise((r) => setTimeout(r, 20));
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    for (const outcome of await Promise.all(inFlight)) {
      assert.ok(outcome instanceof AlertsError && !(outcome instanceof TemplateError), String(outcome));
      assert.equal(outcome.code, 'unavailable');
      assert.match(outcome.message, /the template renderer stopped \(SIGKILL\) while rendering this alert; render it again/);
    }
    assert.equal(JSON.parse((await renderAlertSandboxed(config({ a: 'again' }) as never, context)).body).a, 'again');
  });

  it(`stops a renderer that takes longer than ${SANDBOX_LIMITS.deadlineMs} ms on one alert; one that got no CPU meanwhile is the machine's fault, not the template's`, async () => {
    await Promise.all(Array.from({ length: SANDBOX_LIMITS.processes * 2 }, () => renderAlertSandboxed(config({ a: 'warm' }) as never, context)));
    const held = templateRendererPids();
    assert.equal(held.length, SANDBOX_LIMITS.processes);
    // every renderer held up by SIGSTOP: the deadline passes while the renderer uses no CPU, as on a machine too busy to run it
    for (const pid of held) process.kill(pid, 'SIGSTOP');
    const started = Date.now();
    try {
      await assert.rejects(
        renderAlertSandboxed(config({ a: 'held' }) as never, context),
        (err: Error) =>
          err instanceof AlertsError && !(err instanceof TemplateError) && err.code === 'unavailable' &&
          /took longer than 2000 ms; its template renderer was stopped after \d+ ms of CPU: the machine was busy, not the template slow; render it again/.test(err.message),
      );
    } finally {
      for (const pid of held) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* the one that was stopped for good is gone */
        }
      }
    }
    assert.ok(Date.now() - started >= SANDBOX_LIMITS.deadlineMs - 50);
    assert.equal(JSON.parse((await renderAlertSandboxed(config({ a: 'next' }) as never, context)).body).a, 'next');
  });

  it('a renderer held up in the middle of a render (a busy machine) fails that render as unavailable, to render again, not as the template’s error', async () => {
    // every renderer warmed on these strings, so that their CPU is then their own, not the compiler's
    // (a renderer just started may pass a limit on them cold: that warms it all the same)
    await Promise.all(Array.from({ length: SANDBOX_LIMITS.processes * 3 }, () => renderAlertSandboxed(config({ a: slow }) as never, context).catch(() => undefined)));
    const pids = templateRendererPids();
    const cpuAtStart = pids.map((pid) => processCpuMs(pid)!);
    // eight strings of about 12 ms of CPU each: inside both of liquid's limits when the renderer runs
    const rendering = renderAlertSandboxed(config({ a: [...slow, ...slow] }) as never, context).then(() => 'rendered', (err: Error) => err);
    // the render has begun once its renderer has used CPU (an idle renderer uses none); then it is held for 300 ms
    let busy: number | undefined;
    while (busy === undefined) {
      await new Promise((r) => setTimeout(r, 1));
      busy = pids.find((pid, i) => processCpuMs(pid)! - cpuAtStart[i] >= 10);
    }
    process.kill(busy, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 300));
    process.kill(busy, 'SIGCONT');
    const outcome = await rendering;
    assert.ok(outcome instanceof AlertsError && !(outcome instanceof TemplateError), String(outcome));
    assert.equal(outcome.code, 'unavailable');
    assert.match(outcome.message, /^payload\.template: (template render limit exceeded(, line:\d+, col:\d+)?|rendering the alert took longer than 250 ms) after [\d.]+ ms of CPU \(its limit (50|250) ms\): the machine was busy, not the template slow; render it again$/);
    // rendered again, it renders
    assert.equal(JSON.parse((await renderAlertSandboxed(config({ a: [...slow, ...slow] }) as never, context)).body).a.length, 8);
  });

  it('reads a process’s CPU from /proc: a spinning process’s grows, a stopped one’s does not', async () => {
    const spin = spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const before = processCpuMs(spin.pid)!;
      await new Promise((r) => setTimeout(r, 400));
      const spun = processCpuMs(spin.pid)! - before;
      assert.ok(spun >= 150 && spun <= 450, `spinning for 400 ms used ${spun} ms of CPU`);
      process.kill(spin.pid!, 'SIGSTOP');
      await new Promise((r) => setTimeout(r, 50));
      const stopped = processCpuMs(spin.pid)!;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(processCpuMs(spin.pid), stopped, 'a stopped process used CPU');
    } finally {
      spin.kill('SIGKILL');
    }
    assert.equal(processCpuMs(2 ** 22 + 12345), undefined, 'no such process');
  });
});
