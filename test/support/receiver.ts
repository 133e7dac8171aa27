import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One webhook request as the receiver saw it. */
export interface Received {
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * How the receiver answers the n-th request (1-based) on a path: a status, headers and body (sent
 * once `after` settles, when given: a receiver held by the test), or 'hang' (never answer).
 */
export type Reply = { status: number; headers?: Record<string, string>; body?: string; after?: Promise<unknown> } | 'hang';
export type Script = (n: number, request: Received) => Reply;

/**
 * A real HTTP receiver on 127.0.0.1 for webhook tests. Each path can have its
 * own script; requests are recorded per path. Answers 200 by default.
 */
export class Receiver {
  private server = http.createServer((req, res) => this.onRequest(req, res));
  private scripts = new Map<string, Script>();
  private hanging = new Set<http.ServerResponse>();
  readonly requests: Received[] = [];
  private waiters: (() => void)[] = [];
  url = '';

  static async start(): Promise<Receiver> {
    const receiver = new Receiver();
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}`;
    return receiver;
  }

  /** Sets how a path answers; returns its full URL. */
  on(path: string, script: Script): string {
    this.scripts.set(path, script);
    return `${this.url}${path}`;
  }

  /** requests to a path, whatever their query string */
  at(path: string): Received[] {
    return this.requests.filter((r) => r.path.split('?')[0] === path);
  }

  /** Waits until `path` has received at least `count` requests. */
  async waitFor(path: string, count = 1, timeoutMs = 20_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.at(path).length < count) {
      if (Date.now() > deadline) throw new Error(`receiver: ${path} got ${this.at(path).length} of ${count} requests within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return this.at(path);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      const received: Received = { at: Date.now(), method: req.method ?? '', path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      this.requests.push(received);
      const n = this.requests.filter((r) => r.path.split('?')[0] === path).length;
      const script = this.scripts.get(path);
      const reply = script ? script(n, received) : { status: 200 };
      for (const wake of this.waiters.splice(0)) wake();
      if (reply === 'hang') {
        this.hanging.add(res);
        return;
      }
      const answer = () => {
        res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
        res.end(reply.body ?? 'ok');
      };
      if (reply.after) void reply.after.finally(answer);
      else answer();
    });
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
