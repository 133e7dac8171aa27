import assert from 'node:assert/strict';
import { renderAlert } from '../lib/render';
import { newRenderBudget, renderJsonTemplate, renderString, RenderStarvedError, TEMPLATE_LIMITS, TemplateError } from '../lib/templates';

/**
 * The render time limits (lib/templates.ts) are wall-clock: LiquidJS's 50 ms a string and the
 * alert's 250 ms. Passing one is the template's fault only when the render used at least half the
 * limit in CPU; otherwise the machine was busy (RenderStarvedError, rendered again). The clocks are
 * driven here so that each case is decided, not hoped for: the wall clock made to run on as if the
 * process waited for a core, and the CPU clock made to run on as if the template spun.
 */
describe('render time limits: the template’s fault, or a busy machine’s', () => {
  const context = { run: { id: 'run_1' }, workflow: { id: 'wf_1' } };
  const realNow = performance.now.bind(performance);
  const realCpuUsage = process.cpuUsage.bind(process);
  let wallSkewMs = 0;
  let cpuSkewUs = 0;

  beforeEach(() => {
    wallSkewMs = 0;
    cpuSkewUs = 0;
    // every reading of the clocks that LiquidJS (performance.now) and the limits (process.cpuUsage) take moves them on by the skew
    let wallAdded = 0;
    performance.now = () => realNow() + (wallAdded += wallSkewMs);
    let cpuAdded = 0;
    process.cpuUsage = ((previous?: NodeJS.CpuUsage) => {
      const now = realCpuUsage();
      cpuAdded += cpuSkewUs;
      const usage = { user: now.user + cpuAdded, system: now.system };
      return previous ? { user: usage.user - previous.user, system: usage.system - previous.system } : usage;
    }) as typeof process.cpuUsage;
  });
  afterEach(() => {
    performance.now = realNow;
    process.cpuUsage = realCpuUsage;
  });

  it('renders as before when neither clock runs on', () => {
    assert.equal(renderString('{{ run.id }}/{% for i in (1..3) %}{{ i }}{% endfor %}', context), 'run_1/123');
  });

  it('a string that passed liquid’s limit on little CPU is a busy machine’s: RenderStarvedError, not a TemplateError', () => {
    wallSkewMs = 30; // each of liquid's checks finds 30 ms more gone: a process that waits for a core
    assert.throws(
      () => renderString('{% for i in (1..5) %}{{ i }}{% endfor %}', context),
      (err: Error) =>
        err instanceof RenderStarvedError && !(err instanceof TemplateError) &&
        /^template render limit exceeded.* after [\d.]+ ms of CPU \(its limit 50 ms\): the machine was busy, not the template slow$/.test(err.message),
    );
  });

  it('a string that passed liquid’s limit having used half of it in CPU is the template’s: TemplateError', () => {
    wallSkewMs = 30;
    cpuSkewUs = 30_000; // and each reading of the CPU finds 30 ms more used: a template that spins
    assert.throws(
      () => renderString('{% for i in (1..5) %}{{ i }}{% endfor %}', context),
      (err: Error) => err instanceof TemplateError && /^template render limit exceeded/.test(err.message),
    );
  });

  it('the alert’s deadline passed on little CPU is a busy machine’s; passed on its CPU, the template’s', () => {
    const late = { ...newRenderBudget(), deadline: Date.now() - 1 };
    assert.throws(
      () => renderJsonTemplate({ a: '{{ run.id }}' }, context, late),
      (err: Error) => err instanceof RenderStarvedError && new RegExp(`^rendering the alert took longer than ${TEMPLATE_LIMITS.alertRenderMs} ms after [\\d.]+ ms of CPU`).test(err.message),
    );
    // the same deadline, with the alert's CPU counted from this process's start: well over half of 250 ms
    const spent = { ...late, cpuAtStart: { user: 0, system: 0 } };
    assert.ok(realCpuUsage().user / 1000 >= TEMPLATE_LIMITS.alertRenderMs, 'this test process has used more CPU than an alert may');
    assert.throws(
      () => renderJsonTemplate({ a: '{{ run.id }}' }, context, spent),
      (err: Error) => err instanceof TemplateError && err.message === `rendering the alert took longer than ${TEMPLATE_LIMITS.alertRenderMs} ms`,
    );
  });

  it('a string whose limit the alert’s deadline cut short is judged by the alert’s CPU and limit', () => {
    // 10 ms left of the alert's 250: liquid's limit for the next string is those 10 ms; passing it is the alert's deadline passing
    const almost = { ...newRenderBudget(), deadline: Date.now() + 10 };
    wallSkewMs = 30;
    assert.throws(
      () => renderString('{% for i in (1..5) %}{{ i }}{% endfor %}', context, 'text', almost),
      (err: Error) => err instanceof RenderStarvedError && /^rendering the alert took longer than 250 ms after [\d.]+ ms of CPU \(its limit 250 ms\)/.test(err.message),
    );
  });

  it('renderAlert names the part that passed its limit, and keeps whose fault it was', () => {
    wallSkewMs = 30;
    const config = { webhook: { url: 'https://hooks.example.com/{% for i in (1..3) %}{{ i }}{% endfor %}', headers: {}, timeoutMs: 10_000 }, payload: { template: null } };
    assert.throws(() => renderAlert(config as never, context as never), (err: Error) => err instanceof RenderStarvedError && /^webhook\.url: template render limit exceeded/.test(err.message));
    cpuSkewUs = 30_000;
    assert.throws(() => renderAlert(config as never, context as never), (err: Error) => err instanceof TemplateError && /^webhook\.url: template render limit exceeded/.test(err.message));
  });
});
