/**
 * Where a request's time goes, without changing the service: timers wrapped around the running
 * service's store (db.query, db.transaction) and its Temporal client (workflow.start, signalWithStart,
 * signal), recording each call's start and duration while `on`; probes of the Temporal server (an RPC
 * with no persistence, and a workflow start on a task queue no worker polls: the server and its
 * persistence alone) and this process's event-loop delay. bench/burst.ts reads them for the 500-event
 * burst. The wrappers name calls by their kind only, so they hold whatever the service's statements are.
 */
import diagnostics from 'node:diagnostics_channel';
import type http from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { RunningService } from '../../runtime/boot';
import { dist, type Dist } from './stats';

interface Call {
  name: string;
  at: number;
  ms: number;
}

export interface CallSummary {
  name: string;
  /** when the first and the last call of this kind started, ms after the window's start */
  firstAtMs: number;
  lastAtMs: number;
  n: number;
  totalMs: number;
  /** most calls of this kind open at once */
  peakConcurrent: number;
  ms: Dist;
}

/** a statement by its opening words, as bench/latency.ts names them */
const sqlKind = (sql: string) => `db: ${sql.replace(/\s+/g, ' ').trim().slice(0, 56)}`;

export class CallRecorder {
  private calls: Call[] = [];
  private on = false;
  private open = new Map<string, number>();
  private peak = new Map<string, number>();
  private unpolledStart?: (...args: any[]) => Promise<any>;
  private loop = monitorEventLoopDelay({ resolution: 10 });

  /** POST /api/events requests as the service's HTTP server saw them (diagnostics_channel): arrival and response end */
  private requests = new Map<http.IncomingMessage, { arrived: number; finished?: number }>();
  private clientSent: number[] = [];
  private clientConnects: number[] = [];

  constructor(private readonly service: RunningService) {
    diagnostics.subscribe('http.server.request.start', (message) => {
      const { request } = message as { request: http.IncomingMessage };
      if (this.on && request.method === 'POST' && request.url === '/api/events') this.requests.set(request, { arrived: performance.now() });
    });
    // the bench's own client (fetch: undici): when each POST /api/events had its headers written to a socket
    diagnostics.subscribe('undici:client:sendHeaders', (message) => {
      const { request } = message as { request: { method?: string; path?: string } };
      if (this.on && request.method === 'POST' && request.path === '/api/events') this.clientSent.push(performance.now());
    });
    diagnostics.subscribe('undici:client:connected', () => {
      if (this.on) this.clientConnects.push(performance.now());
    });
    diagnostics.subscribe('http.server.response.finish', (message) => {
      const { request } = message as { request: http.IncomingMessage };
      const r = this.requests.get(request);
      if (r && r.finished === undefined) r.finished = performance.now();
    });
    const db = service.db as unknown as Record<string, (...args: any[]) => Promise<any>>;
    this.wrap(db, 'query', (sql: string) => sqlKind(String(sql)));
    this.wrap(db, 'transaction', () => 'db.transaction (whole)');
    const wf = service.temporal.client.workflow as unknown as Record<string, (...args: any[]) => Promise<any>>;
    this.unpolledStart = wf.start.bind(wf);
    this.wrap(wf, 'start', () => 'temporal client.workflow.start');
    this.wrap(wf, 'signalWithStart', () => 'temporal client.workflow.signalWithStart');
  }

  private wrap(obj: Record<string, (...args: any[]) => Promise<any>>, key: string, name: (...args: any[]) => string): void {
    const fn = obj[key];
    if (typeof fn !== 'function') return;
    const bound = fn.bind(obj);
    obj[key] = async (...args: any[]) => {
      if (!this.on) return bound(...args);
      const n = name(...args);
      const at = performance.now();
      const open = (this.open.get(n) ?? 0) + 1;
      this.open.set(n, open);
      this.peak.set(n, Math.max(this.peak.get(n) ?? 0, open));
      try {
        return await bound(...args);
      } finally {
        this.open.set(n, (this.open.get(n) ?? 1) - 1);
        this.calls.push({ name: n, at, ms: performance.now() - at });
      }
    };
  }

  private probeTimer?: NodeJS.Timeout;

  /** Starts recording, and probes the server every `probeEveryMs`. */
  start(tag: string, probeEveryMs = 100): void {
    this.calls = [];
    this.requests.clear();
    this.clientSent = [];
    this.clientConnects = [];
    this.peak.clear();
    this.on = true;
    this.loop.reset();
    this.loop.enable();
    let i = 0;
    this.probeTimer = setInterval(() => {
      const n = i++;
      const t = performance.now();
      void this.service.temporal.client.connection.workflowService
        .getSystemInfo({})
        .then(() => this.calls.push({ name: 'probe: server getSystemInfo (no persistence)', at: t, ms: performance.now() - t }))
        .catch(() => undefined);
      const t2 = performance.now();
      void this.unpolledStart?.('BenchProbe', { workflowId: `bench-probe-${tag}-${n}`, taskQueue: `bench-probe-${tag}`, workflowExecutionTimeout: '1 minute' })
        .then(() => this.calls.push({ name: 'probe: start on a queue no worker polls (server + persistence)', at: t2, ms: performance.now() - t2 }))
        .catch(() => undefined);
    }, probeEveryMs);
  }

  /** Stops recording; calls that started in [fromPerf, untilPerf]. */
  stop(
    fromPerf: number,
    untilPerf: number,
  ): {
    calls: CallSummary[];
    eventLoopDelayMs: { p50: number; p99: number; max: number };
    serverSide: { note: string; requests: number; arrivedMs: Dist; inServerMs: Dist; finishedMs: Dist };
    clientSide: { note: string; headersWritten: number; headersWrittenMs: Dist; newConnections: number; connectedMs: Dist };
  } {
    this.on = false;
    clearInterval(this.probeTimer);
    this.loop.disable();
    const late = (ns: number) => Math.max(0, Math.round(ns / 1e4 - 1000) / 100);
    const byName = new Map<string, Call[]>();
    for (const c of this.calls) {
      if (c.at < fromPerf || c.at > untilPerf) continue;
      if (!byName.has(c.name)) byName.set(c.name, []);
      byName.get(c.name)!.push(c);
    }
    const calls = [...byName.entries()]
      .map(([name, list]) => ({ name, firstAtMs: Math.round(Math.min(...list.map((c) => c.at)) - fromPerf), lastAtMs: Math.round(Math.max(...list.map((c) => c.at)) - fromPerf), n: list.length, totalMs: Math.round(list.reduce((a, c) => a + c.ms, 0)), peakConcurrent: this.peak.get(name) ?? 0, ms: dist(list.map((c) => c.ms)) }))
      .sort((a, b) => (a.name.startsWith('probe') ? 1 : 0) - (b.name.startsWith('probe') ? 1 : 0) || b.totalMs - a.totalMs);
    const reqs = [...this.requests.values()].filter((r) => r.finished !== undefined);
    const serverSide = {
      note: 'POST /api/events as the service\'s HTTP server saw them (diagnostics_channel http.server.request.start / response.finish): arrivedMs = arrival after the first send; inServerMs = arrival to response end; finishedMs = response end after the first send',
      requests: reqs.length,
      arrivedMs: dist(reqs.map((r) => r.arrived - fromPerf)),
      inServerMs: dist(reqs.map((r) => r.finished! - r.arrived)),
      finishedMs: dist(reqs.map((r) => r.finished! - fromPerf)),
    };
    this.requests.clear();
    const clientSide = {
      note: 'the bench\'s fetch (undici diagnostics_channel): headersWrittenMs = when each POST /api/events had its headers written to a socket, after the first send; connectedMs = when each new connection was up',
      headersWritten: this.clientSent.length,
      headersWrittenMs: dist(this.clientSent.map((t) => t - fromPerf)),
      newConnections: this.clientConnects.length,
      connectedMs: dist(this.clientConnects.map((t) => t - fromPerf)),
    };
    return { clientSide, serverSide, calls, eventLoopDelayMs: { p50: late(this.loop.percentile(50)), p99: late(this.loop.percentile(99)), max: late(this.loop.max) } };
  }
}
