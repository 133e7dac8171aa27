/**
 * `npm run cluster`: the deployment topology on this machine, as test/cluster.test.ts runs it.
 *
 *   1. finds or builds the Temporal server at the pinned version (runtime/temporal-server.ts: cached
 *      outside the clone, built once with `go install`, about 6 minutes);
 *   2. PostgreSQL: a throwaway server from the installed binaries, or the server of
 *      TEST_DATABASE_URL (its user needs CREATEDB; the databases made here are dropped at the end);
 *   3. Temporal's persistence and visibility schemas, with the module's own tool and SQL files;
 *   4. the server, the `default` namespace and the six search attributes;
 *   5. CLUSTER_APIS API processes (default 2), each on its own port, and CLUSTER_WORKERS worker
 *      processes (default 2), all on PostgreSQL.
 * CLUSTER_TEMPORAL_PORT and CLUSTER_API_PORT (the first API's; the others follow) fix the ports;
 * unset, free ones are taken. Each process's log lines are shown prefixed with its name (LOG_LEVEL,
 * default warn). Ctrl-C stops everything. `npm run cluster -- --build` only builds (or finds) the server and
 * prints where it is (.ci/run uses it).
 *
 * The real server has no Web UI built in (the CLI's dev server does): run the Temporal UI server
 * (`temporalio/ui`) with TEMPORAL_ADDRESS set to the address printed here and its codec endpoint at
 * an API's /codec (docs/deployment.md), or read histories with the CLI:
 * `temporal workflow show --address <address> -w <delivery id> --codec-endpoint <api>/codec --codec-auth "Bearer <token>"`.
 */
import { resolveTemporalServer, TEMPORAL_SERVER_VERSION } from '../runtime/temporal-server';
import { startCluster } from '../test/support/cluster';

const log = (line: string) => process.stdout.write(`[cluster] ${line}\n`);

function count(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number (got ${process.env[name]})`);
  return value;
}

async function main(): Promise<void> {
  if (process.argv.includes('--build')) {
    const started = Date.now();
    const bin = await resolveTemporalServer({ log });
    log(`Temporal server ${TEMPORAL_SERVER_VERSION}: ${bin.server} (sql tool ${bin.sqlTool}, schemas ${bin.schemaDir}; ${Math.round((Date.now() - started) / 1000)} s)`);
    return;
  }
  const apis = count('CLUSTER_APIS', 2);
  const workers = count('CLUSTER_WORKERS', 2);
  log(`starting PostgreSQL, the Temporal server ${TEMPORAL_SERVER_VERSION}, ${apis} API and ${workers} worker processes ...`);
  const port = (name: string) => (process.env[name] ? count(name, 0) : undefined);
  const cluster = await startCluster({
    apis,
    workers,
    log,
    temporalPort: port('CLUSTER_TEMPORAL_PORT'),
    apiPort: port('CLUSTER_API_PORT'),
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', LOG_FORMAT: 'pretty' },
    onProcess: (proc) => {
      const show = (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) process.stdout.write(`[${proc.name}] ${line}\n`);
      };
      proc.child.stdout?.on('data', show);
      proc.child.stderr?.on('data', show);
    },
  });
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`${why}: stopping everything ...`);
    try {
      await cluster.stop();
      log('stopped');
      process.exit(0);
    } catch (err) {
      log(`stop: ${(err as Error).message}`);
      process.exit(1);
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void stop(signal));
  for (const proc of [...cluster.apis.map((a) => a.process), ...cluster.workers]) {
    proc.child.once('exit', (code, signal) => void (stopping || stop(`${proc.name} exited (${code ?? signal}); its output:\n${proc.messages().slice(-2000)}`)));
  }
  log(`Temporal frontend  ${cluster.temporal.address} (namespace default; log ${cluster.temporal.logFile})`);
  log(`alerts database    ${cluster.databaseUrl}`);
  for (const api of cluster.apis) log(`API                ${api.url} (pid ${api.process.child.pid})`);
  for (const worker of cluster.workers) log(`worker             pid ${worker.child.pid}`);
  log(`API token          ${cluster.token} (project default)`);
  log(`try: curl -s -H "Authorization: Bearer ${cluster.token}" ${cluster.apis[0]?.url ?? ''}/api/alerts/config/wf_orders`);
  log(`histories: temporal workflow list --address ${cluster.temporal.address} ; Web UI: temporalio/ui with TEMPORAL_ADDRESS=${cluster.temporal.address} and TEMPORAL_CODEC_ENDPOINT=${cluster.apis[0]?.url ?? '<api>'}/codec`);
  log('ready; press Ctrl-C to stop');
}

main().catch((err: Error) => {
  process.stderr.write(`[cluster] could not start: ${err.message}\n`);
  process.exit(1);
});
