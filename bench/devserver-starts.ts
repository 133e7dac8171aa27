/**
 * `npm run bench:devserver`: the Temporal dev server's own ceiling, with no worker and no alerts
 * service: how many workflow starts a second it takes, and its CPU per start. Each variant starts
 * a fresh dev server (the Temporal CLI the project resolves) on 127.0.0.1, and 32 concurrent
 * clients start workflows on a task queue no worker polls for DEVSERVER_SECONDS (default 10),
 * with two keyword search attributes (as AlertDelivery starts carry) or none.
 *
 * Variants: memory (no --db-filename), file (SQLite defaults), wal (journal_mode=WAL,
 * synchronous=OFF: the embedded default), each with and without search attributes.
 * DEVSERVER_VARIANTS=memory,wal selects some. Results: printed, and bench/results/devserver-*.json.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { TypedSearchAttributes, defineSearchAttributeKey } from '@temporalio/common';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { freePort } from '../runtime/host';

const SECONDS = Number(process.env.DEVSERVER_SECONDS ?? 10);
const CONCURRENCY = 32;
const ALL = ['memory', 'file', 'wal'];
const variants = (process.env.DEVSERVER_VARIANTS ?? ALL.join(',')).split(',').map((v) => v.trim()).filter(Boolean);
for (const v of variants) if (!ALL.includes(v)) throw new Error(`DEVSERVER_VARIANTS: unknown variant ${v} (known: ${ALL.join(', ')})`);

const Status = defineSearchAttributeKey('AlertStatus', 'KEYWORD');
const ConfigId = defineSearchAttributeKey('AlertConfigId', 'KEYWORD');

function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (100 a second on Linux)
}

async function measure(cli: string, storage: string, withAttributes: boolean) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-devserver-'));
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless', '--log-level', 'error',
    '--search-attribute', 'AlertStatus=Keyword', '--search-attribute', 'AlertConfigId=Keyword'];
  if (storage !== 'memory') args.push('--db-filename', path.join(dir, 'temporal.sqlite'));
  if (storage === 'wal') args.push('--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=OFF');
  const child = spawn(cli, args, { stdio: 'ignore' });
  try {
    let connection: Connection | undefined;
    for (let i = 0; i < 150 && !connection; i++) {
      connection = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: 1000 }).catch(() => undefined);
      if (!connection) await new Promise((r) => setTimeout(r, 200));
    }
    if (!connection) throw new Error('the dev server did not come up');
    const client = new Client({ connection });
    await new Promise((r) => setTimeout(r, 3000)); // let its startup work settle
    let started = 0;
    const end = Date.now() + SECONDS * 1000;
    const cpu0 = cpuSeconds(child.pid!);
    const t0 = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async (_, worker) => {
      for (let i = 0; Date.now() < end; i++) {
        await client.workflow.start('AlertDelivery', {
          taskQueue: 'nobody-polls-this',
          workflowId: `probe-${worker}-${i}`,
          args: [{ filler: 'x'.repeat(600) }],
          ...(withAttributes ? { typedSearchAttributes: new TypedSearchAttributes([{ key: Status, value: 'in_progress' }, { key: ConfigId, value: 'cfg_probe' }]) } : {}),
        });
        started++;
      }
    }));
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(child.pid!) - cpu0;
    await connection.close();
    return { storage, searchAttributes: withAttributes, starts: started, seconds: +seconds.toFixed(1), startsPerSecond: +(started / seconds).toFixed(1), serverCpuMsPerStart: +((cpu * 1000) / started).toFixed(2), serverCorePercent: +((cpu / seconds) * 100).toFixed(1) };
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(async () => {
  const cli = await resolveTemporalCli({ log: (line) => console.log(`[devserver] ${line}`) });
  const results = [];
  for (const storage of variants) {
    for (const withAttributes of [true, false]) {
      console.log(`[devserver] ${storage}, ${withAttributes ? 'with' : 'without'} search attributes: ${SECONDS} s of starts ...`);
      const r = await measure(cli, storage, withAttributes);
      console.log(`[devserver]   ${r.starts} starts, ${r.startsPerSecond}/s, dev server ${r.serverCpuMsPerStart} ms CPU per start (${r.serverCorePercent} % of a core)`);
      results.push(r);
    }
  }
  console.log('\n| storage | search attributes | starts/s | dev server CPU per start | dev server CPU |\n|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.storage} | ${r.searchAttributes ? 'two' : 'none'} | ${r.startsPerSecond} | ${r.serverCpuMsPerStart} ms | ${r.serverCorePercent} % of a core |`);
  const out = path.join(__dirname, 'results', `devserver-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), seconds: SECONDS, concurrency: CONCURRENCY, cpus: os.cpus().length, results }, null, 2));
  console.log(`[devserver] results written to ${path.relative(process.cwd(), out)}`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
