import { fork, type ChildProcess } from 'node:child_process';
import { Context } from '@temporalio/activity';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RenderedAlert, TemplateContext } from '../lib/render';
import type { AlertConfig } from '../lib/schemas';
import { AlertsError } from '../lib/errors';
import { procStatFields } from './host';
import { RenderStarvedError, STARVED_BELOW, TemplateError } from '../lib/templates';

/**
 * Alert templates are rendered in child processes whose heap and time are bounded, never in the
 * service's own process. LiquidJS's budgets (lib/templates.ts) stop most runaway templates with a
 * clear message, but not every way a string or an array can grow (a `capture` doubled in a loop
 * reached 268 million characters, and V8 then aborts the whole process with an uncatchable "invalid
 * size error"; a worker thread dies with its process on that abort). A child that dies, runs out of
 * heap or passes its deadline takes only the alert it was rendering with it: that render fails as a
 * TemplateError (a permanent failure of that one delivery, logged with this reason), the child is
 * replaced, and every other alert renders on. A deadline passed by a child that used less than half
 * of it in CPU (it waited for a core: a busy machine) is no template's fault: that render fails as
 * `unavailable`, to be rendered again, as do the time limits inside a render (lib/templates.ts).
 *
 * Each child renders one alert at a time, so a render that kills it fails no other alert.
 */
export const SANDBOX_LIMITS = {
  /** V8 old-space heap of one renderer process */
  heapMb: 128,
  /** wall-clock time one alert's render may take in a renderer before the process is killed */
  deadlineMs: 2_000,
  /** renderer processes: a template that holds one up does not hold up every other alert */
  processes: 2,
  /** time a renderer may take to start */
  startMs: 30_000,
} as const;

type RenderableConfig = Pick<AlertConfig, 'webhook' | 'payload'>;

interface Job {
  config: RenderableConfig;
  context: TemplateContext;
  resolve(rendered: RenderedAlert): void;
  reject(err: Error): void;
}

type ChildMessage =
  | { kind: 'ready' }
  | { kind: 'rendered'; rendered: RenderedAlert }
  | { kind: 'template_error'; message: string }
  | { kind: 'starved'; message: string }
  | { kind: 'error'; message: string };

/**
 * A render cut short on a busy machine (RenderStarvedError) is rendered again up to the
 * STARVED_RENDER_TRIES-th try of the activity that renders (`starvedTooOften`): a template that spins
 * while the machine stays loaded is cut short the same way, and must fail in the end, not be
 * rendered for ever. The try counted is the activity's attempt, whatever failed before.
 */
export const STARVED_RENDER_TRIES = 10;

/** the running activity's attempt (from 1; a local activity's too), or undefined outside an activity */
function activityAttempt(): number | undefined {
  try {
    return Context.current().info.attempt;
  } catch {
    return undefined;
  }
}

/**
 * `err` as the template's failure when it is a render cut short on a busy machine on the
 * STARVED_RENDER_TRIES-th try or later of the activity that rendered (`attempt`, from 1); undefined
 * when it is to be rendered again (outside an activity, always: the API answers 503), or not such a render.
 */
export function starvedTooOften(err: unknown, attempt = activityAttempt()): TemplateError | undefined {
  if (!(err instanceof RenderStarvedError) || attempt === undefined || attempt < STARVED_RENDER_TRIES) return undefined;
  return new TemplateError(`${err.message.replace(/; render it again$/, '')}, on try ${attempt} of its step: taken for the template's own`);
}

/**
 * CPU ms the process `pid` has used, from /proc (Linux); undefined where it cannot be read. The
 * deadline is wall-clock: a renderer that waited for a core (a loaded machine) passes it with a
 * template that needs a fraction of it, and that is no template's fault.
 */
export function processCpuMs(pid: number | undefined): number | undefined {
  const fields = pid === undefined ? undefined : procStatFields(pid);
  // utime and stime, in clock ticks
  return fields && ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

const CHILD_ENTRY = path.join(__dirname, 'template-renderer.ts');
// the child runs the TypeScript sources as this process does (tsx), with a bounded heap
const childExecArgv = () => ['--import', pathToFileURL(require.resolve('tsx')).href, `--max-old-space-size=${SANDBOX_LIMITS.heapMb}`];

/** One renderer process, started on first use and replaced when it dies. */
class Renderer {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private current: Job | undefined;
  /** the process rendering `current` */
  private currentOn: ChildProcess | undefined;
  private readonly queue: Job[] = [];

  get load(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  submit(job: Job): void {
    this.queue.push(job);
    void this.next();
  }

  private start(): Promise<void> {
    // its own process group: a Ctrl-C in the terminal stops the service, which lets in-flight alerts finish, not the renderer under them
    const child = fork(CHILD_ENTRY, [], { execArgv: childExecArgv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json', detached: true });
    this.child = child;
    let started = false;
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the template renderer did not start within ${SANDBOX_LIMITS.startMs} ms`)), SANDBOX_LIMITS.startMs);
      child.once('message', (m: ChildMessage) => {
        clearTimeout(timer);
        if (m.kind === 'ready') {
          started = true;
          resolve();
        }
        else reject(new Error(`the template renderer did not start: ${JSON.stringify(m)}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the template renderer exited at start (${signal ?? `code ${code}`})`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      // a renderer that never started is no template's fault: next() reports that one
      if (!started) return;
      // only the alert this very process was rendering (a process stopped at its deadline was let go first)
      if (this.currentOn !== child) return;
      const job = this.current;
      this.current = undefined;
      this.currentOn = undefined;
      const how = signal ?? `exit code ${code}`;
      // V8 aborts (a fatal error, a heap exhausted) are the template's doing; a renderer stopped from outside is not, and its alert is rendered again
      if (signal === 'SIGABRT' || signal === 'SIGTRAP' || signal === 'SIGSEGV' || code === 133 || code === 134) {
        job?.reject(new TemplateError(`rendering this alert stopped its template renderer (${how}): a template may use at most ${SANDBOX_LIMITS.heapMb} MiB of memory`));
      } else {
        job?.reject(new AlertsError('unavailable', `the template renderer stopped (${how}) while rendering this alert; render it again`));
      }
      void this.next();
    });
    this.idle(child);
    return this.ready;
  }

  // an idle renderer keeps no process alive; one at work does, until its answer is in
  private idle(child: ChildProcess): void {
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
  }

  private busy(child: ChildProcess): void {
    child.ref();
    (child.channel as { ref?: () => void } | undefined)?.ref?.();
  }

  private async next(): Promise<void> {
    if (this.current || this.queue.length === 0) return;
    const job = this.queue.shift()!;
    this.current = job;
    let child: ChildProcess;
    try {
      if (!this.child) await this.start();
      else await this.ready;
      child = this.child!;
    } catch (err) {
      // the renderer could not run at all: not the template's fault, so the caller may retry
      this.child?.kill('SIGKILL');
      this.child = undefined;
      if (this.current === job) {
        this.current = undefined;
        this.currentOn = undefined;
      }
      job.reject(new AlertsError('unavailable', `no template renderer could run: ${(err as Error).message}`));
      void this.next();
      return;
    }
    this.busy(child);
    this.currentOn = child;
    const cpuAtStart = processCpuMs(child.pid);
    const timer = setTimeout(() => setImmediate(() => {
      // after the I/O of this loop turn: an answer that came in while this process was busy counts
      if (this.current !== job) return;
      this.current = undefined;
      this.currentOn = undefined;
      const cpuAtEnd = processCpuMs(child.pid);
      // let the process go before it is gone, so the next alert starts a new one instead of waiting on it
      if (this.child === child) this.child = undefined;
      child.kill('SIGKILL');
      const message = `rendering the alert took longer than ${SANDBOX_LIMITS.deadlineMs} ms; its template renderer was stopped`;
      // the template's fault if the renderer used half the deadline's worth of CPU, as lib/templates.ts judges its limits (or if that cannot be read)
      const used = cpuAtStart === undefined || cpuAtEnd === undefined ? undefined : cpuAtEnd - cpuAtStart;
      if (used !== undefined && used < SANDBOX_LIMITS.deadlineMs * STARVED_BELOW) {
        job.reject(new RenderStarvedError(`${message} after ${used} ms of CPU: the machine was busy, not the template slow; render it again`));
      } else job.reject(new TemplateError(message));
      void this.next();
    }), SANDBOX_LIMITS.deadlineMs);
    const onMessage = (m: ChildMessage) => {
      if (this.current !== job) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      this.current = undefined;
      this.currentOn = undefined;
      this.idle(child);
      if (m.kind === 'rendered') job.resolve(m.rendered);
      else if (m.kind === 'template_error') job.reject(new TemplateError(m.message));
      else if (m.kind === 'starved') job.reject(new RenderStarvedError(`${m.message}; render it again`));
      else job.reject(new AlertsError('internal', `the template renderer failed: ${m.kind === 'error' ? m.message : JSON.stringify(m)}`));
      void this.next();
    };
    child.on('message', onMessage);
    child.send({ config: job.config, context: job.context }, (err) => {
      if (err && this.current === job) {
        clearTimeout(timer);
        child.off('message', onMessage);
        this.current = undefined;
        this.currentOn = undefined;
        if (this.child === child) this.child = undefined;
        child.kill('SIGKILL');
        job.reject(new AlertsError('unavailable', `the template renderer could not be reached: ${err.message}`));
        void this.next();
      }
    });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  kill(): void {
    this.child?.kill('SIGKILL');
  }
}

const renderers: Renderer[] = Array.from({ length: SANDBOX_LIMITS.processes }, () => new Renderer());

/**
 * Renders URL, headers and body of one alert (lib/render.ts's renderAlert) in a renderer process.
 * Rejects with TemplateError when a template fails, aborts its renderer or outlasts it on its own CPU;
 * with an `unavailable` AlertsError when no renderer could run, one was stopped from outside, or a time
 * limit passed on a busy machine (RenderStarvedError) (then rendering again may help: the API answers
 * 503, a delivery's step is retried).
 */
export function renderAlertSandboxed(config: RenderableConfig, context: TemplateContext): Promise<RenderedAlert> {
  return new Promise((resolve, reject) => {
    const renderer = renderers.reduce((a, b) => (b.load < a.load ? b : a));
    renderer.submit({ config: { webhook: config.webhook, payload: config.payload }, context, resolve, reject });
  });
}

/** The process ids of the running renderers (for tests and diagnostics). */
export function templateRendererPids(): number[] {
  return renderers.map((r) => r.pid).filter((pid): pid is number => pid !== undefined);
}

/** Stops the renderer processes (they start again on the next render). */
export function stopTemplateRenderers(): void {
  for (const r of renderers) r.kill();
}
