/**
 * `npm run demo [-- --exit] [--http]`: the whole path of an alert, on this machine, in one command.
 *
 * A throwaway PostgreSQL shaped like MeshHook's (when PostgreSQL's server programs are installed; else
 * the HTTP API stands in for MeshHook), the embedded alerts service reading its run changes, a receiver
 * that verifies what it gets, an alert config, and a MeshHook run that fails: the signed alert is
 * printed as it arrives, with where to look at it. `--exit` (or DEMO_EXIT=1) stops after that;
 * otherwise everything runs until Ctrl-C, and then goes: the service, the receiver, PostgreSQL, the
 * temp folders.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { redirectLogs } from '../lib/log';
import { AlertVerificationError, verifyAlert } from '../lib/verify';
import { freePort, isExecutable } from '../runtime/host';
import { startService, type RunningService } from '../runtime/boot';

const ROOT = path.resolve(__dirname, '..');
const EXIT_WHEN_SHOWN = process.argv.includes('--exit') || process.env.DEMO_EXIT === '1';
/** `--http`: MeshHook's part is played by POST /api/events even where PostgreSQL is installed */
const VIA_HTTP = process.argv.includes('--http');
const ALERT_WAIT_MS = 60_000;
const WORKFLOW = { slug: 'orders-sync', name: 'Orders sync', version: 3 };
const FAILURE = { message: 'HTTP 500 from CRM', step: 'createContact' };

const color = (code: number) => (text: string) => (process.env.FORCE_COLOR || (process.stdout.isTTY && !process.env.NO_COLOR) ? `\x1b[${code}m${text}\x1b[0m` : text);
const green = color(32);
const red = color(31);
const bold = color(1);
const say = (line: string) => console.log(`[demo] ${line}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class DemoError extends Error {}

// ------------------------------------------------------------ the service's own narration

/**
 * startService narrates its start in log lines (lib/log.ts, a dozen of them); the demo keeps them in a
 * log file and shows only what a first run waits on (the Temporal CLI's install, the workflow bundle).
 */
function divertServiceLog(file: string): { tail(lines?: number): string; restore(): void } {
  const shown = /Temporal CLI|installing|downloading|pip |bundling|waiting for|stopping the Temporal dev server left/i;
  redirectLogs((json) => {
    let line = json;
    try {
      const entry = JSON.parse(json) as { component?: string; msg?: string };
      line = `[${entry.component}] ${entry.msg}`;
    } catch {
      /* not JSON: as it is */
    }
    fs.appendFileSync(file, `${line}\n`);
    if (shown.test(line)) console.log(line);
  });
  return {
    tail: (lines = 5) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : ''),
    restore: () => redirectLogs(undefined),
  };
}

// ------------------------------------------------------------ a throwaway PostgreSQL shaped like MeshHook's

interface MeshHookDatabase {
  url: string;
  /** the MeshHook project the demo's workflow belongs to */
  projectId: string;
  definitionId: string;
  client: Client;
  describe: string;
  stop(): Promise<void>;
}

/** Debian's /usr/lib/postgresql/<newest>/bin, else initdb and postgres on PATH (the same search as test/support/postgres.ts). */
function findPostgres(): { initdb: string; postgres: string } | undefined {
  const debian = '/usr/lib/postgresql';
  const dirs = fs.existsSync(debian)
    ? fs.readdirSync(debian).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a)).map((v) => path.join(debian, v, 'bin'))
    : [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    if (isExecutable(path.join(dir, 'initdb'))) dirs.push(path.dirname(fs.realpathSync(path.join(dir, 'initdb'))), dir);
  }
  const bin = dirs.find((dir) => isExecutable(path.join(dir, 'initdb')) && isExecutable(path.join(dir, 'postgres')));
  return bin ? { initdb: path.join(bin, 'initdb'), postgres: path.join(bin, 'postgres') } : undefined;
}

function setprivWithPdeathsig(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const setpriv = (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, 'setpriv')).find(isExecutable);
  return setpriv && spawnSync(setpriv, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0 ? setpriv : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * initdb + postgres in a temp folder on 127.0.0.1 and a free port (trust auth, no fsync), as user
 * `postgres` when we are root (initdb refuses root). Through setpriv --pdeathsig the postmaster dies
 * with this process even when it is killed outright. Answers why not when it cannot.
 */
async function startMeshHookPostgres(): Promise<MeshHookDatabase | { unavailable: string }> {
  const bin = findPostgres();
  if (!bin) return { unavailable: 'no PostgreSQL server programs (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH' };
  const root = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | undefined;
  if (root) {
    const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
    const [uid, gid] = [id('-u'), id('-g')];
    if (uid.status !== 0 || gid.status !== 0) return { unavailable: 'running as root and there is no "postgres" user to run PostgreSQL as (initdb refuses root)' };
    owner = { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-demo-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  const setpriv = setprivWithPdeathsig();
  let child: ChildProcess | undefined;
  let postmaster: number | undefined;

  const killNow = () => {
    for (const pid of [postmaster, child?.pid]) {
      if (pid !== undefined && alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  process.once('exit', killNow);
  const stop = async () => {
    process.removeListener('exit', killNow);
    if (postmaster !== undefined && alive(postmaster)) {
      process.kill(postmaster, 'SIGINT'); // fast shutdown: ends the sessions, then exits
      for (let waited = 0; waited < 10_000 && alive(postmaster); waited += 50) await sleep(50);
    }
    killNow();
  };

  try {
    if (owner) fs.chownSync(dir, owner.uid, owner.gid);
    const asOwner = (command: string, args: string[]): [string, string[]] => (root ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]);
    const [initCmd, initArgs] = asOwner(bin.initdb, ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
    const init = spawnSync(initCmd, initArgs, { encoding: 'utf8', cwd: dir });
    if (init.status !== 0) throw new DemoError(`initdb failed (${init.error?.message ?? `exit ${init.status}`}): ${(init.stderr || init.stdout || '').trim().split('\n').slice(-3).join(' ')}`);

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const args = ['-D', dataDir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'];
      // setpriv execs postgres itself (same pid), so the parent-death signal reaches the postmaster
      const [cmd, cmdArgs] = setpriv
        ? [setpriv, [...(owner ? [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups'] : []), '--pdeathsig', 'KILL', '--', bin.postgres, ...args]]
        : asOwner(bin.postgres, args);
      const logFd = fs.openSync(logFile, 'a');
      // its own process group: a Ctrl-C reaches the demo, which stops PostgreSQL last
      child = spawn(cmd, cmdArgs, { cwd: dir, stdio: ['ignore', logFd, logFd], detached: true });
      fs.closeSync(logFd);
      child.once('error', () => undefined); // shows as an exit and in the log
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      if (await waitForPostgres(url, child)) {
        postmaster = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
        const db = await prepareMeshHookDatabase(url);
        const version = path.basename(path.dirname(path.dirname(bin.postgres)));
        return { ...db, stop: async () => (await db.client.end().catch(() => undefined), await stop()), describe: `PostgreSQL ${/^\d/.test(version) ? `${version} ` : ''}on 127.0.0.1:${port}` };
      }
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-5).join('\n') : '';
      if (/could not bind|address already in use/i.test(log) && attempt < 3) continue; // lost the race for the port
      throw new DemoError(`PostgreSQL (${bin.postgres}) did not start; the end of its log:\n${log}`);
    }
  } catch (err) {
    await stop();
    if (err instanceof DemoError) return { unavailable: err.message };
    throw err;
  }
}

async function waitForPostgres(url: string, child: ChildProcess): Promise<boolean> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return true;
    } catch {
      /* not yet */
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return false;
}

/** A `meshhook` database with MeshHook's tables, the outbox migration, and one workflow definition. */
async function prepareMeshHookDatabase(adminUrl: string): Promise<Omit<MeshHookDatabase, 'stop' | 'describe'>> {
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE meshhook');
  await admin.end();
  const url = adminUrl.replace(/\/postgres$/, '/meshhook');
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined); // PostgreSQL going away at shutdown
  await client.connect();
  // the tables as MeshHook's migrations make them, then what an operator applies to MeshHook's database
  await client.query(fs.readFileSync(path.join(ROOT, 'test/fixtures/meshhook-schema.sql'), 'utf8'));
  await client.query(fs.readFileSync(path.join(ROOT, 'meshhook/outbox.up.sql'), 'utf8'));
  const projectId = randomUUID();
  const { rows } = await client.query<{ id: string }>(
    'INSERT INTO workflow_definitions (project_id, slug, version, definition) VALUES ($1, $2, $3, $4) RETURNING id::text',
    [projectId, WORKFLOW.slug, WORKFLOW.version, { name: WORKFLOW.name }],
  );
  return { url, projectId, definitionId: rows[0].id, client };
}

// ------------------------------------------------------------ the receiver

interface Arrival {
  webhookId: string;
  alert: unknown;
  at: number;
}

/** An HTTP receiver on 127.0.0.1 that checks each alert with verifyAlert: 204 when verified, 400 naming the failed check. */
async function startReceiver(): Promise<{ url: string; expect(secret: string): void; next(timeoutMs: number): Promise<Arrival | undefined>; close(): Promise<void> }> {
  let secret: string | undefined;
  const arrivals: Arrival[] = [];
  let notify: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = performance.now();
      const webhookId = String(req.headers['webhook-id'] ?? '(no webhook-id)');
      try {
        if (!secret) throw new AlertVerificationError('bad_secret', 'no alert config yet');
        const alert = verifyAlert(Buffer.concat(chunks), req.headers, secret);
        res.writeHead(204).end();
        arrivals.push({ webhookId, alert, at });
        notify?.();
      } catch (err) {
        if (!(err instanceof AlertVerificationError)) throw err;
        console.log(red(`✘ rejected ${webhookId}: ${err.check}: ${err.message}`));
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: err.check, message: err.message } }));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/alerts`,
    expect: (s) => void (secret = s),
    async next(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (arrivals.length === 0 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          notify = resolve;
          setTimeout(resolve, Math.min(1_000, deadline - Date.now()));
        });
      }
      return arrivals.shift();
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ------------------------------------------------------------ the service, the config, the failure

/** The embedded stack on free ports in `dataDir`; a port taken between our choice and the dev server's start means a new try. */
async function startAlertsService(dataDir: string, meshhook: MeshHookDatabase | undefined): Promise<RunningService> {
  for (let attempt = 1; ; attempt++) {
    const [devPort, uiPort] = [await freePort(), await freePort()];
    try {
      return await startService({
        roles: { api: true, worker: true },
        env: {
          ...process.env,
          DATA_DIR: dataDir,
          PORT: '0',
          HOST: '127.0.0.1',
          TEMPORAL_DEV_PORT: String(devPort),
          TEMPORAL_UI_PORT: String(uiPort),
          TEMPORAL_ADDRESS: '',
          TEMPORAL_UI_PUBLIC_URL: '',
          DATABASE_URL: '',
          ALERTS_API_TOKENS: '',
          ALERTS_ENCRYPTION_KEYS: '',
          ALERTS_TLS_CERT_PATH: '',
          ALERTS_TLS_KEY_PATH: '',
          // the receiver is on this machine: that one address is allowed, every other private one stays refused
          ALERTS_EGRESS_ALLOW: '127.0.0.1',
          ALERTS_ALLOW_PRIVATE_NETWORKS: '',
          LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
          MESHHOOK_DATABASE_URL: meshhook?.url ?? '',
          MESHHOOK_PROJECTS: meshhook ? `${meshhook.projectId}:default` : '',
        },
      });
    } catch (err) {
      if (attempt >= 3 || !/exited .* before it was ready|EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function api<T>(service: RunningService, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${service.apiUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${service.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function createAlertConfig(service: RunningService, webhookUrl: string): Promise<{ id: string; secret: string }> {
  const res = await api<{ config: { id: string }; secret: string; error?: { message: string } }>(service, 'POST', '/api/alerts/config', {
    config: {
      workflowId: WORKFLOW.slug,
      name: 'Orders sync failures (demo)',
      conditions: [{ type: 'failure' }],
      webhook: { url: webhookUrl },
      payload: {
        template: {
          text: '{{ workflow.name }} v{{ workflow.version }} failed at {{ error.step }}: {{ error.message }}',
          workflow: '{{ workflow.id }}',
          run: '{{ run.id }}',
          finishedAt: '{{ run.finishedAt }}',
          error: '{{ error }}',
          delivery: '{{ delivery.id }}',
        },
      },
    },
  });
  if (res.status !== 201) throw new Error(`POST /api/alerts/config answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { id: res.body.config.id, secret: res.body.secret };
}

/** What MeshHook does when a run fails, in plain SQL: the run, its error in the event log, then the status. Answers when it failed. */
async function failMeshHookRun(db: MeshHookDatabase): Promise<{ runId: string; failedAt: number }> {
  const { rows } = await db.client.query<{ id: string }>(`INSERT INTO workflow_runs (project_id, workflow_id, status, started_at) VALUES ($1, $2, 'running', now()) RETURNING id::text`, [
    db.projectId,
    db.definitionId,
  ]);
  const runId = rows[0].id;
  await db.client.query(`INSERT INTO workflow_events (run_id, type, payload) VALUES ($1, 'step.failed', $2)`, [runId, { error: FAILURE }]);
  const failedAt = performance.now();
  await db.client.query(`UPDATE workflow_runs SET status = 'failed', finished_at = now() WHERE id = $1`, [runId]);
  return { runId, failedAt };
}

/** The same failure as MeshHook would POST it to the API. */
async function postFailedRun(service: RunningService): Promise<{ runId: string; failedAt: number }> {
  const runId = `run_${randomBytes(4).toString('hex')}`;
  const now = new Date().toISOString();
  const failedAt = performance.now();
  const res = await api(service, 'POST', '/api/events', {
    id: `evt_${runId}`,
    type: 'run.failed',
    workflowId: WORKFLOW.slug,
    runId,
    workflow: { name: WORKFLOW.name, version: WORKFLOW.version },
    run: { startedAt: now, finishedAt: now },
    error: FAILURE,
  });
  if (res.status !== 202) throw new Error(`POST /api/events answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { runId, failedAt };
}

/** The delivery as the API shows it, once its record says how it ended (the webhook can arrive a moment before). */
async function readDelivery(service: RunningService, deliveryId: string): Promise<{ status: string; temporalUrl: string | null }> {
  const route = `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`;
  for (const deadline = Date.now() + 5_000; ; await sleep(100)) {
    const res = await api<{ status: string; temporalUrl: string | null }>(service, 'GET', route);
    if ((res.status === 200 && !['scheduled', 'in_progress'].includes(res.body.status)) || Date.now() > deadline) {
      if (res.status !== 200) throw new Error(`GET ${route} answered ${res.status}: ${JSON.stringify(res.body)}`);
      return res.body;
    }
  }
}

// ------------------------------------------------------------ the story

async function main(): Promise<number> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-demo-'));
  const serviceLog = divertServiceLog(path.join(tmp, 'service.log'));
  let meshhook: MeshHookDatabase | undefined;
  let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;
  let service: RunningService | undefined;
  const removeTmp = () => fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  process.once('exit', removeTmp);

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      await receiver?.close();
      await service?.stop(); // the change source first: it reads from MeshHook's database
      await meshhook?.stop();
      serviceLog.restore();
      removeTmp();
    })());

  // Ctrl-C while waiting ends the wait; earlier, it stops what has started and exits
  let stopWaiting: (() => void) | undefined;
  let signalled = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // npm passes a terminal's Ctrl-C on as well: a repeat within a moment is the same request
    if (signalled && Date.now() - signalled < 500) return;
    if (signalled) process.exit(130);
    signalled = Date.now();
    say(`${signal}: stopping`);
    if (stopWaiting) stopWaiting();
    else void shutdown().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const pg = VIA_HTTP ? { unavailable: '--http' } : await startMeshHookPostgres();
    if ('unavailable' in pg) say(`no throwaway PostgreSQL (${pg.unavailable}): MeshHook's part is played by POST /api/events instead`);
    else {
      meshhook = pg;
      say(`MeshHook's database: ${pg.describe}, MeshHook's tables + meshhook/outbox.up.sql`);
    }

    const started = Date.now();
    say('starting the alerts service (Temporal dev server, PGlite, worker, API) ...');
    try {
      service = await startAlertsService(path.join(tmp, 'data'), meshhook);
    } catch (err) {
      const tail = serviceLog.tail();
      throw new DemoError(`the alerts service did not start: ${(err as Error).message}${tail ? `\n  its last lines:\n${tail.replace(/^/gm, '    ')}` : ''}`);
    }
    say(`service up in ${seconds(Date.now() - started)}: API ${service.apiUrl}, Temporal UI ${service.temporalUiUrl}${meshhook ? ', reading MeshHook\'s run changes' : ''}`);

    receiver = await startReceiver();
    const config = await createAlertConfig(service, receiver.url);
    receiver.expect(config.secret);
    say(`receiver on ${receiver.url}; alert config ${config.id}: failures of "${WORKFLOW.slug}" go there, signed`);

    const run = meshhook ? await failMeshHookRun(meshhook) : await postFailedRun(service);
    say(meshhook ? `MeshHook run ${run.runId} failed (INSERT running, a step.failed event, UPDATE status = 'failed')` : `POST /api/events: run.failed of ${run.runId}`);

    const arrival = await receiver.next(ALERT_WAIT_MS);
    if (!arrival) {
      throw new DemoError(`no verified alert arrived within ${ALERT_WAIT_MS / 1000} s of the failure; the service's last lines:\n${serviceLog.tail().replace(/^/gm, '    ')}`);
    }
    console.log('');
    console.log(`${green('✔ alert received')}   webhook-id ${bold(arrival.webhookId)}, ${Math.round(arrival.at - run.failedAt)} ms after the run failed`);
    console.log(`${green('✔ signature verified')} with verifyAlert (lib/verify.ts) and the config's secret`);
    console.log(JSON.stringify(arrival.alert, null, 2));

    const delivery = await readDelivery(service, arrival.webhookId);
    console.log('');
    console.log(`The delivery is ${delivery.status}; see it in:`);
    console.log(`  Web UI       ${service.apiUrl}/#/d/${encodeURIComponent(arrival.webhookId)}   (sign in with the API token ${service.apiToken})`);
    console.log(`  API          curl -H 'authorization: Bearer ${service.apiToken}' ${service.apiUrl}/api/alerts/deliveries/${encodeURIComponent(arrival.webhookId)}`);
    console.log(`  Temporal UI  ${delivery.temporalUrl ?? '(no Temporal Web UI address known)'}`);
    console.log('');

    if (!EXIT_WHEN_SHOWN) {
      say('running; press Ctrl-C to stop');
      await new Promise<void>((resolve) => (stopWaiting = resolve));
    }
    say('stopping the service, the receiver and PostgreSQL ...');
    await shutdown();
    say('stopped; temp folders removed');
    return 0;
  } catch (err) {
    console.error(red(`[demo] ${err instanceof DemoError ? err.message : (err as Error).stack ?? err}`));
    await shutdown().catch((e) => console.error(`[demo] shutdown failed: ${(e as Error).message}`));
    return 1;
  }
}

void main().then((code) => process.exit(code));
