import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/**
 * Service entry points (worker.ts, api/server.ts) as real child processes, the
 * way production runs them: `node --import tsx <file>`. Output is kept for
 * error messages; kill() and stopAll() make sure no process outlives a test.
 * Their output is a pipe, so the service logs JSON lines (lib/log.ts); waitForOutput
 * matches a pattern against the raw output and against its messages as a person
 * reads them (`[component] message`), so a pattern with quotes in it still matches.
 */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** the output with each JSON log line shown as `[component] message` */
  messages(): string;
  /** true once the process has exited (exitCode or signalCode is set) */
  exited(): boolean;
  /** resolves when a line of output matches `pattern`; rejects if the process exits first or time runs out */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** sends `signal` (default SIGKILL) and resolves once the process has exited */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ServiceProcess>();

/** `text` with each JSON log line (lib/log.ts) shown as `[component] message`; other lines as they are. */
export function logMessages(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (!line.startsWith('{')) return line;
      try {
        const entry = JSON.parse(line) as { component?: string; msg?: string };
        return typeof entry.msg === 'string' ? `[${entry.component ?? '?'}] ${entry.msg}` : line;
      } catch {
        return line;
      }
    })
    .join('\n');
}

/** Starts `node --import tsx <entry>` in the project root with `env` added to this process's environment. */
export function startServiceProcess(name: string, entry: string, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // the readable rendering of the complete lines so far, kept as they arrive
  let messages = '';
  let rendered = 0;
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    const end = output.lastIndexOf('\n') + 1;
    if (end > rendered) {
      messages += logMessages(output.slice(rendered, end));
      rendered = end;
    }
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.once('error', (err) => onData(Buffer.from(`[spawn error] ${err.message}\n`)));
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const exited = () => child.exitCode !== null || child.signalCode !== null;

  const proc: ServiceProcess = {
    name,
    child,
    output: () => output,
    messages: () => messages + logMessages(output.slice(rendered)),
    exited,
    waitForOutput(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const done = (err?: Error) => {
          listeners.delete(check);
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        };
        const check = () => {
          if (pattern.test(output) || pattern.test(proc.messages())) done();
          else if (exited()) done(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}:\n${output}`));
        };
        const timer = setTimeout(() => done(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${output}`)), timeoutMs);
        listeners.add(check);
        void exitedPromise.then(check);
        check();
      });
    },
    async kill(signal = 'SIGKILL') {
      if (!exited()) child.kill(signal);
      await exitedPromise;
      running.delete(proc);
    },
  };
  running.add(proc);
  void exitedPromise.then(() => running.delete(proc));
  return proc;
}

/** SIGKILLs every service process still running (for after() hooks). */
export async function stopAllServiceProcesses(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
}

// A test run that dies without its after() hooks must not leave services behind.
process.once('exit', () => {
  for (const p of running) if (!p.exited()) p.child.kill('SIGKILL');
});
