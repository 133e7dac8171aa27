import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the front saw it. */
export interface FrontRequest {
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** the body; empty for a request dropped before it was read */
  body: string;
}

/**
 * What the front does with the n-th request (1-based):
 * - `{ status, headers?, body? }`: answers itself, the service never sees the request;
 * - 'forward': passes it to the service and its answer back;
 * - 'drop': destroys the connection as soon as the request's head arrives, before forwarding;
 * - 'drop-answer': forwards it, waits for the service's whole answer, then destroys the connection
 *   instead of passing the answer on (the service did the work, the client never hears);
 * - 'hang': reads the request and never answers.
 */
export type FrontAction = { status: number; headers?: Record<string, string>; body?: string } | 'forward' | 'drop' | 'drop-answer' | 'hang';
export type FrontScript = (n: number, request: FrontRequest) => FrontAction;

/** A node:http front on 127.0.0.1 before a real service, failing the way a load balancer or a network does. */
export class FaultyFront {
  readonly requests: FrontRequest[] = [];
  /** how many requests reached the service */
  forwarded = 0;
  url = '';
  private server = http.createServer((req, res) => this.onRequest(req, res));

  private constructor(
    private target: URL,
    private script: FrontScript,
  ) {}

  static async start(target: string, script: FrontScript): Promise<FaultyFront> {
    const front = new FaultyFront(new URL(target), script);
    await new Promise<void>((resolve) => front.server.listen(0, '127.0.0.1', resolve));
    front.url = `http://127.0.0.1:${(front.server.address() as AddressInfo).port}`;
    return front;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const request: FrontRequest = { at: Date.now(), method: req.method ?? '', path: req.url ?? '/', headers: req.headers, body: '' };
    this.requests.push(request);
    const action = this.script(this.requests.length, request);
    if (action === 'drop') {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      request.body = Buffer.concat(chunks).toString('utf8');
      if (action === 'hang') return;
      if (typeof action === 'object') {
        res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers });
        res.end(action.body ?? JSON.stringify({ error: { code: 'front', message: `the front answered ${action.status}` } }));
        return;
      }
      this.forward(req, request.body, (status, headers, body) => {
        if (action === 'drop-answer') {
          req.socket.destroy();
          return;
        }
        res.writeHead(status, headers);
        res.end(body);
      });
    });
  }

  private forward(req: http.IncomingMessage, body: string, answer: (status: number, headers: http.IncomingHttpHeaders, body: Buffer) => void): void {
    this.forwarded++;
    const headers = { ...req.headers, host: this.target.host };
    delete headers.connection;
    const upstream = http.request({ host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        const { connection: _c, 'transfer-encoding': _t, 'keep-alive': _k, ...passed } = up.headers;
        answer(up.statusCode ?? 502, passed, Buffer.concat(chunks));
      });
    });
    upstream.on('error', () => req.socket.destroy());
    upstream.end(body);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
