import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { AlertsError } from '../lib/errors';
import { buildTemplateContext } from '../lib/render';
import { RenderStarvedError, TemplateError } from '../lib/templates';
import { MockActivityEnvironment } from '@temporalio/testing';
import { processCpuMs, renderAlertSandboxed, SANDBOX_LIMITS, STARVED_RENDER_TRIES, starvedTooOften, templateRendererPids } from '../runtime/template-sandbox';

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
          err instanceof RenderStarvedError && err.code === 'unavailable' &&
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
    // one string of about 15 ms of CPU warm: well under half of liquid's 50 ms wherever it is stopped,
    // so that once stopped in it, passing the limit can only be the machine's fault
    const held = { a: '{% for a in (1..500) %}{% for b in (1..100) %}{% endfor %}{% endfor %}done' };
    // every renderer warmed on it, so that its CPU is then its own, not the compiler's (a renderer just
    // started may pass the limit on it cold: that warms it all the same)
    await Promise.all(Array.from({ length: SANDBOX_LIMITS.processes * 3 }, () => renderAlertSandboxed(config(held) as never, context).catch(() => undefined)));
    const pids = templateRendererPids();
    // the stop must land inside the render: if the render was over first (this process itself slow to
    // see it begin), that try proves nothing and is made again
    let outcome: unknown = 'rendered';
    for (let tries = 0; outcome === 'rendered' && tries < 5; tries++) {
      const cpuAtStart = pids.map((pid) => processCpuMs(pid)!);
      const rendering = renderAlertSandboxed(config(held) as never, context).then(() => 'rendered', (err: Error) => err);
      // the render has begun once a renderer has used CPU (an idle renderer uses none); then both are held for 300 ms
      while (!pids.some((pid, i) => processCpuMs(pid)! - cpuAtStart[i] >= 10)) await new Promise((r) => setTimeout(r, 1));
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      await new Promise((r) => setTimeout(r, 300));
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      outcome = await rendering;
    }
    assert.ok(outcome instanceof RenderStarvedError, String(outcome));
    assert.equal(outcome.code, 'unavailable');
    assert.match(outcome.message, /^payload\.template: (template render limit exceeded(, line:\d+, col:\d+)?|rendering the alert took longer than 250 ms) after [\d.]+ ms of CPU \(its limit (50|250) ms\): the machine was busy, not the template slow; render it again$/);
    // and its renderer renders on
    assert.equal(JSON.parse((await renderAlertSandboxed(config({ a: 'again' }) as never, context)).body).a, 'again');
  });

  it('reads a process’s CPU from /proc: a spinning process’s grows, a stopped one’s does not', async () => {
    const spin = spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const before = processCpuMs(spin.pid)!;
      await new Promise((r) => setTimeout(r, 400));
      const spun = processCpuMs(spin.pid)! - before;
      // at least one clock tick (a loaded machine may give the spinner little of a core), at most the time it had
      assert.ok(spun >= 10 && spun <= 400 + 20, `spinning for 400 ms used ${spun} ms of CPU`);
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

  it(`takes a render cut short on a busy machine for the template's failure from the ${STARVED_RENDER_TRIES}th try of its step, not before`, async () => {
    const starved = new RenderStarvedError('payload.template: template render limit exceeded after 3.0 ms of CPU (its limit 50 ms): the machine was busy, not the template slow; render it again');
    assert.equal(starvedTooOften(starved, STARVED_RENDER_TRIES - 1), undefined);
    assert.equal(starvedTooOften(starved, undefined), undefined, 'outside an activity: always rendered again');
    assert.equal(starvedTooOften(new AlertsError('unavailable', 'no template renderer could run'), STARVED_RENDER_TRIES + 5), undefined, 'a renderer that could not run is never the template');
    const failure = starvedTooOften(starved, STARVED_RENDER_TRIES);
    assert.ok(failure instanceof TemplateError);
    assert.equal(failure.message, `payload.template: template render limit exceeded after 3.0 ms of CPU (its limit 50 ms): the machine was busy, not the template slow, on try ${STARVED_RENDER_TRIES} of its step: taken for the template's own`);
    // by default, the attempt of the activity that rendered
    assert.equal(await new MockActivityEnvironment({ attempt: STARVED_RENDER_TRIES - 1 }).run(async () => starvedTooOften(starved)), undefined);
    assert.ok((await new MockActivityEnvironment({ attempt: STARVED_RENDER_TRIES }).run(async () => starvedTooOften(starved))) instanceof TemplateError);
  });
});
