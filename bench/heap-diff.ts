/**
 * `npm run bench:heap`: what the service process keeps per alert. Starts the embedded stack in
 * this process, sends HEAP_WARMUP alerts (default 1500) at 25/s, takes a V8 heap snapshot after
 * GC, sends HEAP_ALERTS more (default 3000), takes another, and prints the heap used at each and
 * the node types and constructors that grew most between them (count and bytes). Snapshots are
 * written to a temp directory and removed. Run with --expose-gc (the npm script does).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { createFailureConfig, failedRunEvent, sleep, startTarget } from './lib/stack';

const WARMUP = Number(process.env.HEAP_WARMUP ?? 1500);
const ALERTS = Number(process.env.HEAP_ALERTS ?? 3000);
const log = (line: string) => console.log(`[heap] ${line}`);

function summarize(file: string): Map<string, { count: number; bytes: number }> {
  const snapshot = JSON.parse(fs.readFileSync(file, 'utf8'));
  const meta = snapshot.snapshot.meta;
  const fields: string[] = meta.node_fields;
  const types: string[] = meta.node_types[0];
  const strings: string[] = snapshot.strings;
  const nodes: number[] = snapshot.nodes;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const named = new Set(['object', 'closure', 'native', 'hidden', 'code', 'array', 'synthetic']);
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < nodes.length; i += fields.length) {
    const type = types[nodes[i + iType]];
    const key = named.has(type) ? `${type}: ${strings[nodes[i + iName]].slice(0, 60)}` : type;
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += nodes[i + iSize];
    out.set(key, entry);
  }
  return out;
}

(async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:heap)');
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  const target = await startTarget({ tmpdir: os.tmpdir(), taskQueue: 'meshhook-alerts-heap', keepData: false, log });
  const workflowId = 'wf_heap';
  await createFailureConfig(target, workflowId, receiverUrl, 'heap');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-heap-'));
  const send = async (from: number, count: number) => {
    const answers: Promise<unknown>[] = [];
    for (let i = from; i < from + count; i++) {
      answers.push(
        fetch(`${target.apiUrl}/api/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
          body: failedRunEvent(`evt_heap_${i}`, `run_heap_${i}`, workflowId),
        }).then((r) => r.text()),
      );
      if ((i - from + 1) % 500 === 0) log(`sent ${i - from + 1} / ${count}`);
      await sleep(40);
    }
    await Promise.all(answers);
    await sleep(3000); // the last deliveries end
  };
  const snap = async (name: string) => {
    gc();
    await sleep(500);
    gc();
    const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;
    const file = v8.writeHeapSnapshot(path.join(dir, `${name}.heapsnapshot`));
    log(`${name}: heap used ${heapMiB.toFixed(1)} MiB`);
    return { heapMiB, file };
  };
  try {
    await send(0, WARMUP);
    const a = await snap('after warm-up');
    await send(WARMUP, ALERTS);
    const b = await snap(`after ${ALERTS} more alerts`);
    const [before, after] = [summarize(a.file), summarize(b.file)];
    const rows = [...new Set([...before.keys(), ...after.keys()])]
      .map((key) => ({ key, count: (after.get(key)?.count ?? 0) - (before.get(key)?.count ?? 0), bytes: (after.get(key)?.bytes ?? 0) - (before.get(key)?.bytes ?? 0) }))
      .sort((x, y) => y.bytes - x.bytes)
      .slice(0, 15);
    console.log(`\nheap used: ${a.heapMiB.toFixed(1)} MiB -> ${b.heapMiB.toFixed(1)} MiB over ${ALERTS} alerts (${(((b.heapMiB - a.heapMiB) * 2 ** 20) / ALERTS).toFixed(0)} bytes per alert)`);
    console.log('largest growth between the snapshots (bytes, count, node):');
    for (const r of rows) console.log(`${String(r.bytes).padStart(10)} B ${String(r.count).padStart(8)}  ${r.key}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await target.service.stop();
    target.cleanup();
    receiver.close();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
