/**
 * The open-loop sender (bench/lib/sender-child.mjs): in a child process, what MeshHook is to the
 * service, a process of its own (bench/lib/procs.ts counts its CPU as `sender`, apart from the
 * service); or inline, the same code in the bench's own process, beside the service.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const SENDER_ENTRY = path.join(__dirname, 'sender-child.mjs');

export interface SendItem {
  /** when to send, ms after the run's start */
  atMs: number;
  /** the request body; `%DUE%` in it becomes the send's due time (ISO) */
  body: string;
}

export interface SentSample {
  /** ms after the run's start (the child's clock) */
  t0: number | null;
  answered: number | null;
  status: number | null;
  error: string | null;
  deliveryId: string | null;
}

export interface SenderRun {
  startWallMs: number;
  sentMs: number;
  doneMs: number;
  maxLagMs: number;
  samples: SentSample[];
}

export interface Sender {
  run(url: string, headers: Record<string, string>, items: SendItem[], drainMs: number): Promise<SenderRun>;
  close(): Promise<void>;
}

export async function startSender(where: 'child' | 'inline'): Promise<Sender> {
  if (where === 'inline') {
    // an ES module: loaded with import(), which this CommonJS module cannot do statically
    const { sendAll } = (await import(SENDER_ENTRY)) as { sendAll(run: { url: string; headers: Record<string, string>; items: SendItem[]; drainMs: number }): Promise<SenderRun> };
    return { run: (url, headers, items, drainMs) => sendAll({ url, headers, items, drainMs }), close: async () => undefined };
  }
  const child: ChildProcess = fork(SENDER_ENTRY, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('message', (m: { type?: string }) => (m?.type === 'ready' ? resolve() : reject(new Error(`the sender said ${JSON.stringify(m)}`))));
    child.once('exit', (code) => reject(new Error(`the sender exited (${code}) before it was ready`)));
  });
  return {
    run: (url, headers, items, drainMs) =>
      new Promise<SenderRun>((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`the sender exited (${code}) during a run`));
        child.once('exit', onExit);
        child.once('message', (m: { type: string; message?: string } & SenderRun) => {
          child.off('exit', onExit);
          if (m.type === 'done') resolve(m);
          else reject(new Error(`the sender failed: ${m.message ?? JSON.stringify(m)}`));
        });
        child.send({ type: 'run', url, headers, items, drainMs });
      }),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.disconnect();
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  };
}
