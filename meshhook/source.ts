import type { Client as PgClient } from 'pg';
import { processEvent } from '../dispatch/process-event';
import { logger } from '../lib/log';
import { eventOfChange, type RunChange } from '../lib/meshhook';
import type { ServiceDeps } from '../runtime/deps';

/**
 * The change source for MeshHook's own database: reads the outbox that meshhook/outbox.up.sql keeps
 * (one row per run insert or status change, written in MeshHook's own transaction), turns each row
 * into an execution event and hands it to the one event path (processEvent), then saves its cursor.
 *
 * Nothing is lost: the cursor moves only after a batch has been dispatched, so a source killed or
 * cut off goes on from it and hands the batch over again; the event ids are the changes' own, so
 * what was already started is not started again. Rows are read in (transaction id, id) order and only
 * below the oldest transaction still running, so a change committed after a later one is not skipped.
 * LISTEN wakes it at once; a poll every `pollMs` finds what a lost notification did not announce.
 */

export const NOTIFY_CHANNEL = 'meshhook_alerts';

export interface MeshHookSourceOptions {
  /** MeshHook's database (MESHHOOK_DATABASE_URL): a direct or session-mode connection, since LISTEN needs one */
  url: string;
  /** MeshHook project id -> alerts project id (MESHHOOK_PROJECTS) */
  projects: Map<string, string>;
  /** the cursor's name, for more than one source on one database */
  name?: string;
  pollMs?: number;
  batchSize?: number;
  /** events dispatched at once within a batch (order does not matter: a delay watch is judged by time) */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface MeshHookSource {
  /** resolves once everything committed before the call has been dispatched */
  caughtUp(): Promise<void>;
  /** the last error that stopped a read, until a read succeeds again */
  lastError(): string | undefined;
  stop(): Promise<void>;
}

interface ChangeRow {
  id: string;
  txid: string;
  run_id: string;
  project_id: string;
  old_status: string | null;
  new_status: string;
  started_at: Date | null;
  finished_at: Date | null;
  changed_at: Date;
  slug: string | null;
  version: number | null;
  name: string | null;
  error_payload: unknown;
}

const READ_BATCH = `
  SELECT c.id::text, c.txid::text, c.run_id::text, c.project_id::text, c.old_status, c.new_status, c.started_at, c.finished_at, c.changed_at,
         d.slug, d.version, d.definition->>'name' AS name,
         CASE WHEN c.new_status = 'failed' THEN (
           SELECT e.payload FROM public.workflow_events e
           WHERE e.run_id = c.run_id AND e.ts <= c.changed_at + interval '1 second'
             AND (e.type ILIKE '%fail%' OR e.type ILIKE '%error%' OR e.payload ? 'error')
           ORDER BY e.id DESC LIMIT 1) END AS error_payload
  FROM meshhook_alerts.run_changes c
  LEFT JOIN public.workflow_definitions d ON d.id = c.workflow_id
  WHERE (c.txid, c.id) > ($1::xid8, $2::bigint)
    AND c.txid < pg_snapshot_xmin(pg_current_snapshot())
  ORDER BY c.txid, c.id
  LIMIT $3`;

export async function startMeshHookSource(deps: Pick<ServiceDeps, 'db' | 'keyring' | 'temporal'>, options: MeshHookSourceOptions): Promise<MeshHookSource> {
  const { Client } = await import('pg');
  const name = options.name ?? 'default';
  const pollMs = options.pollMs ?? 5_000;
  const batchSize = options.batchSize ?? 500;
  const concurrency = options.concurrency ?? 16;
  const sourceLog = logger('meshhook');
  const log = options.log ?? ((line: string) => sourceLog.info({}, line));

  let client: PgClient | undefined;
  let stopped = false;
  let error: string | undefined;
  let wake: (() => void) | undefined;
  // a notification that comes while a read is under way: read again at once instead of sleeping
  let woken = false;
  const wakeUp = () => {
    woken = true;
    wake?.();
  };
  /** reads completed, and whether one is under way */
  let reads = 0;
  let reading = false;
  const readWaiters: { after: number; resolve: () => void }[] = [];

  const connect = async (): Promise<PgClient> => {
    const c = new Client({ connectionString: options.url });
    c.on('error', (err) => {
      error = `connection to MeshHook's database failed: ${err.message}`;
      wakeUp();
    });
    c.on('notification', wakeUp);
    await c.connect();
    await c.query(`LISTEN ${NOTIFY_CHANNEL}`);
    await checkProjects(c, options.projects);
    return c;
  };

  /** Dispatches every change after the cursor that is safe to read; answers how many. */
  const drain = async (c: PgClient): Promise<number> => {
    let total = 0;
    for (;;) {
      const [cursor] = (await c.query<{ txid: string; change_id: string }>('SELECT txid::text, change_id::text FROM meshhook_alerts.cursors WHERE source = $1', [name])).rows;
      const rows = (await c.query<ChangeRow>(READ_BATCH, [cursor?.txid ?? '0', cursor?.change_id ?? '0', batchSize])).rows;
      if (rows.length === 0) return total;
      for (let i = 0; i < rows.length; i += concurrency) await Promise.all(rows.slice(i, i + concurrency).map((row) => dispatch(row)));
      const last = rows[rows.length - 1];
      await c.query(
        `INSERT INTO meshhook_alerts.cursors (source, txid, change_id) VALUES ($1, $2::xid8, $3::bigint)
         ON CONFLICT (source) DO UPDATE SET txid = EXCLUDED.txid, change_id = EXCLUDED.change_id, updated_at = now()`,
        [name, last.txid, last.id],
      );
      total += rows.length;
      if (rows.length < batchSize) return total;
    }
  };

  const dispatch = async (row: ChangeRow): Promise<void> => {
    const projectId = options.projects.get(row.project_id.toLowerCase());
    // a project nobody mapped stops the source at this change (the cursor stays): an alert sent to a guessed project is worse than a late one
    if (!projectId) throw new Error(`MeshHook project ${row.project_id} (run ${row.run_id}) is not in MESHHOOK_PROJECTS; add <id>:<alerts project> and restart`);
    if (!row.slug) throw new Error(`run ${row.run_id} names a workflow definition that does not exist`);
    const change: RunChange = {
      changeId: row.id, runId: row.run_id, projectId: row.project_id, oldStatus: row.old_status, newStatus: row.new_status,
      startedAt: row.started_at, finishedAt: row.finished_at, changedAt: row.changed_at, slug: row.slug, version: row.version, name: row.name, errorPayload: row.error_payload,
    };
    const event = eventOfChange(change);
    if (event) await processEvent(deps, projectId, event);
  };

  const loop = async () => {
    let backoffMs = 200;
    while (!stopped) {
      try {
        client ??= await connect();
        woken = false;
        reading = true;
        const n = await drain(client).finally(() => (reading = false));
        if (n > 0) log(`dispatched ${n} run change${n === 1 ? '' : 's'}`);
        if (error) log('reading again');
        error = undefined;
        backoffMs = 200;
        reads++;
        for (const w of readWaiters.filter((w) => w.after <= reads)) {
          readWaiters.splice(readWaiters.indexOf(w), 1);
          w.resolve();
        }
        if (!woken) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, pollMs).unref();
          });
        }
      } catch (err) {
        if (stopped) break;
        const message = (err as Error).message;
        if (message !== error) log(`stopped reading: ${message}; trying again`);
        error = message;
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((r) => setTimeout(r, backoffMs).unref());
        backoffMs = Math.min(backoffMs * 2, 10_000);
      }
    }
  };

  // a project left unmapped, or a database that cannot be read, stops the start with the reason
  client = await connect();
  log(`reading run changes of MeshHook's database as source "${name}" (${options.projects.size} project${options.projects.size === 1 ? '' : 's'} mapped)`);
  const running = loop();
  return {
    caughtUp() {
      // the first read that starts after this call covers everything committed before it
      const after = reads + (reading ? 2 : 1);
      wakeUp();
      return new Promise((resolve) => readWaiters.push({ after, resolve }));
    },
    lastError: () => error,
    async stop() {
      stopped = true;
      wakeUp();
      await running;
      await client?.end().catch(() => undefined);
    },
  };
}

/** Refuses to read when a project that has runs is not mapped: the operator decides where its alerts go. */
async function checkProjects(c: PgClient, projects: Map<string, string>): Promise<void> {
  const rows = (await c.query<{ project_id: string }>('SELECT DISTINCT project_id::text FROM public.workflow_definitions')).rows;
  const unmapped = rows.map((r) => r.project_id).filter((id) => !projects.has(id.toLowerCase()));
  if (unmapped.length) throw new Error(`MeshHook projects not in MESHHOOK_PROJECTS: ${unmapped.join(', ')} (add <id>:<alerts project> for each)`);
}
