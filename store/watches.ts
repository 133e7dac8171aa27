import { open, seal, type Keyring } from '../lib/crypto';
import type { DeliveryRef, ExecutionEvent } from '../lib/schemas';
import type { Db, Queryable } from './db';
import { groupCommit, type GroupCommit } from './group-commit';

/**
 * Delay watches as rows (docs/delay-watches.md). A watch is its delivery's row in alert_deliveries
 * with a `watch_deadline`; a finishing event records `run_finished_at` on it (and suppresses it when
 * it finished in time); the config's DelayWatcher workflow claims the rows past their deadline and
 * starts an AlertDelivery for each late one. `delay_watchers.wake_at` is the deadline the watcher is
 * committed to wake at.
 *
 * Lock order. run.started (openWatch): INSERT the row, then lock the watcher's row (FOR SHARE, which the watcher's FOR UPDATE waits for and blocks) and
 * read wake_at, in one transaction. The watcher (settleWake): lock the watcher's row, then read the
 * earliest open deadline and write it as wake_at, in one transaction. Either
 *   - the run.started transaction locks first: it commits (its row visible) before the watcher gets
 *     the lock, and the watcher's read of the minimum, a statement after the lock, sees the row; or
 *   - the watcher locks first: the run.started transaction waits on the lock until the watcher has
 *     committed its wake_at, and then reads that value. The watcher may not have seen the row (not yet
 *     committed when it read the minimum); run.started then finds wake_at NULL or later than its
 *     deadline and signals the watcher (dispatch/start-delivery.ts wakeDelayWatcher), or finds it at or
 *     before its deadline, and the watcher, waking then, reads the minimum again and sees the row.
 * So a row can never be inserted "after the watcher computed wake_at" without being told to it.
 * (PGlite runs one statement or transaction at a time, which is the first case always.)
 */

/**
 * The lock order below needs each statement to see what committed before it (READ COMMITTED): a
 * database whose default isolation is REPEATABLE READ (some poolers set it) would take the snapshot
 * at the transaction's first statement, before the lock wait. The first statement of both transactions
 * on PostgreSQL; not on PGlite, which runs one transaction at a time (a statement fewer on each
 * watched run.started, the embedded default's hot path).
 */
const readCommitted = (db: Db, tx: Queryable) => (db.kind === 'pglite' ? undefined : tx.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED'));

/** An open watch: scheduled, not fired, with a deadline. */
const OPEN = `status = 'scheduled' AND watch_fired_at IS NULL AND watch_deadline IS NOT NULL`;

const ms = (d: Date | string | null): number | null => (d === null ? null : new Date(d).getTime());
const ts = (msValue: number) => new Date(msValue).toISOString();

/** Test seams: where a test holds a transaction to force an interleaving on PostgreSQL (test/delay-watcher-store.test.ts). */
export interface WatchHooks {
  /** openWatch: after its row's INSERT, before it locks the watcher's row */
  afterInsert?: () => Promise<void>;
  /** settleWake: after it locked the watcher's row, before it reads the earliest deadline */
  afterLock?: () => Promise<void>;
}

export interface OpenedWatch {
  /** the row existed already (a repeated run.started, or its finishing event came first) */
  duplicate: boolean;
  /** whether the watcher must be told of this deadline (signalWithStart): see needsWake */
  wake: boolean;
  deadlineMs: number;
}

/**
 * A wake later than this overdue means the watcher may be gone (terminated by hand): a run.started
 * then signals it anyway (signalWithStart starts it again). A watcher that is only late (its worker
 * down) just gets a signal it did not need.
 */
export const WAKE_OVERDUE_MS = 60_000;

/** Whether a watch with this deadline must wake the watcher, given the wake it is committed to. */
export function needsWake(wakeAtMs: number | null, deadlineMs: number, nowMs: number): boolean {
  if (wakeAtMs === null) return true;
  if (wakeAtMs > deadlineMs) return true;
  return nowMs - wakeAtMs > WAKE_OVERDUE_MS;
}

/**
 * run.started of a watched run: its row (scheduled, with its deadline and the sealed event) and the
 * watcher's row, then the watcher's wake_at under its row lock, in one transaction. A row that exists
 * is left as it is (duplicate); an open one still says whether the watcher must be woken, so an event
 * sent again after a crash between the commit and the signal still wakes it. On PGlite a new watch of
 * a config with a watcher row is one statement (openWatchAtOnce), where `hooks` do not apply.
 */
export async function openWatch(
  db: Db,
  keyring: Keyring,
  ref: DeliveryRef,
  event: ExecutionEvent,
  deadlineMs: number,
  nowMs = Date.now(),
  hooks: WatchHooks = {},
): Promise<OpenedWatch> {
  const sealed = seal(keyring, JSON.stringify(event), `${ref.projectId}/${ref.deliveryId}`);
  const atOnce = db.kind === 'pglite' ? await batcherOf(db).open({ ref, sealed, atMs: deadlineMs }) : undefined;
  if (atOnce) return { duplicate: false, wake: needsWake(atOnce.wakeAtMs, deadlineMs, nowMs), deadlineMs };
  return db.transaction(async (tx) => {
    await readCommitted(db, tx);
    // A row that a finishing event created first (no deadline, suppressed, its finish time kept) takes
    // this run.started: decided by time, whichever of the two events the service handled first (a
    // batch's events run side by side). Finished after the deadline: the watch is open again, and late.
    const inserted = await tx.query<{ status: string }>(
      `INSERT INTO alert_deliveries AS d (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, key_id, event_sealed, watch_deadline)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $8, $9, $10)
       ON CONFLICT (delivery_id) DO UPDATE SET
         event_id = EXCLUDED.event_id, key_id = EXCLUDED.key_id, event_sealed = EXCLUDED.event_sealed, watch_deadline = EXCLUDED.watch_deadline,
         status = CASE WHEN d.run_finished_at > EXCLUDED.watch_deadline THEN 'scheduled' ELSE 'suppressed' END, updated_at = now()
       WHERE d.watch_deadline IS NULL AND d.status = 'suppressed' AND d.run_finished_at IS NOT NULL AND d.watch_fired_at IS NULL
       RETURNING d.status`,
      [ref.deliveryId, ref.projectId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, sealed.keyId, sealed.ciphertext, ts(deadlineMs)],
    );
    const duplicate = inserted.length === 0;
    // taken over, and the run finished in time: nothing to watch, nothing new started (as for a repeat)
    if (!duplicate && inserted[0].status !== 'scheduled') return { duplicate: true, wake: false, deadlineMs };
    let openDeadlineMs: number | null = deadlineMs;
    if (duplicate) {
      const [row] = await tx.query<{ watch_deadline: Date | null; open: boolean }>(
        `SELECT watch_deadline, (${OPEN}) AS open FROM alert_deliveries WHERE delivery_id = $1`,
        [ref.deliveryId],
      );
      openDeadlineMs = row?.open ? ms(row.watch_deadline) : null;
      // finished, fired, or an earlier version's watch (its own workflow holds the timer): nothing to wake
      if (openDeadlineMs === null) return { duplicate, wake: false, deadlineMs };
    }
    await hooks.afterInsert?.();
    // FOR SHARE: run.started transactions of one config do not wait for each other, only for the
    // watcher's FOR UPDATE (and it for them). The watcher's row exists after a config's first watch:
    // then this is one statement.
    const lockWatcher = () => tx.query<{ wake_at: Date | null }>(`SELECT wake_at FROM delay_watchers WHERE config_id = $1 FOR SHARE`, [ref.configId]);
    let [watcher] = await lockWatcher();
    if (!watcher) {
      await tx.query(`INSERT INTO delay_watchers (config_id, project_id) VALUES ($1, $2) ON CONFLICT (config_id) DO NOTHING`, [ref.configId, ref.projectId]);
      [watcher] = await lockWatcher();
    }
    return { duplicate, wake: needsWake(ms(watcher.wake_at), openDeadlineMs, nowMs), deadlineMs: openDeadlineMs };
  });
}

/** A watched run's row as one statement of a batch writes it: the columns every watch statement sets. */
interface WatchRow {
  ref: DeliveryRef;
  sealed: { keyId: string; ciphertext: string };
  /** the deadline (openWatch) or the finish time (finishWatch) */
  atMs: number;
}

/**
 * The rows of a batch as a relation `v` (delivery_id, project_id, config_id, workflow_id, run_id,
 * event_id, condition, key_id, event_sealed, at): one array parameter per column, so that a batch of
 * any size is the same statement text (prepared once on PGlite, store/pglite-prepared.ts).
 */
const WATCH_ROWS = `SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
       AS v (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, key_id, event_sealed, at)`;

/** WATCH_ROWS's parameters: the rows' values, column by column. */
function watchParams(rows: WatchRow[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: 10 }, () => []);
  for (const { ref, sealed, atMs } of rows) {
    [ref.deliveryId, ref.projectId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, sealed.keyId, sealed.ciphertext, ts(atMs)].forEach((value, i) =>
      columns[i].push(value),
    );
  }
  return columns;
}

/** Rows in one statement at most: a batch big enough that its per-row cost is flat. */
const WATCH_BATCH_MAX = 200;

/** PGlite's group commits of watch statements, by database (a test's spy of a Db is a database of its own). */
const batchers = new WeakMap<Db, { open: GroupCommit<WatchRow, OpenedAtOnce>; finish: GroupCommit<WatchRow, FinishedWatch> }>();

function batcherOf(db: Db) {
  let b = batchers.get(db);
  if (!b) {
    const key = (r: WatchRow) => r.ref.deliveryId;
    b = {
      open: groupCommit({ key, max: WATCH_BATCH_MAX, run: (rows) => openWatchesAtOnce(db, rows) }),
      finish: groupCommit({ key, max: WATCH_BATCH_MAX, run: (rows) => finishWatches(db, rows) }),
    };
    batchers.set(db, b);
  }
  return b;
}

/** openWatchesAtOnce's answer for one row: inserted, with the watcher's committed wake; undefined: the transaction decides. */
type OpenedAtOnce = { wakeAtMs: number | null } | undefined;

/**
 * openWatch on PGlite, which runs one statement or transaction at a time (no lock order to keep): in
 * the steady state (a new row, the watcher's row there) one statement instead of a 4-statement
 * transaction, for every watch opened while the process was busy (group commit); anything else (a
 * duplicate, a taken-over row, a config's first watch) undefined, for the transaction to decide.
 */
async function openWatchesAtOnce(db: Queryable, rows: WatchRow[]): Promise<OpenedAtOnce[]> {
  const answered = await db.query<{ delivery_id: string; wake_at: Date | null }>(
    `WITH v AS (${WATCH_ROWS}),
     ins AS (INSERT INTO alert_deliveries (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, key_id, event_sealed, watch_deadline)
       SELECT delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, 'scheduled', key_id, event_sealed, at FROM v
       WHERE EXISTS (SELECT 1 FROM delay_watchers w WHERE w.config_id = v.config_id)
       ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id)
     SELECT ins.delivery_id, w.wake_at FROM ins JOIN v USING (delivery_id) JOIN delay_watchers w ON w.config_id = v.config_id`,
    watchParams(rows),
  );
  const byId = new Map(answered.map((r) => [r.delivery_id, { wakeAtMs: ms(r.wake_at) }]));
  return rows.map((r) => byId.get(r.ref.deliveryId));
}

export interface FinishedWatch {
  /** the row as it is now: its status and deadline (NULL: an earlier version's watch, or created by this finish) */
  status: string;
  watchDeadlineMs: number | null;
  /** this statement created the row (the finishing event came before its run.started) */
  created: boolean;
  /** this statement moved the watch to suppressed */
  suppressed: boolean;
}

/**
 * A finishing event of a watched run, in one statement: records when the run finished (the earliest
 * finishing event's time) and, when the watch is open and the run finished at or before its deadline,
 * ends it `suppressed`. No row yet (the finishing event came before its run.started): a row already
 * suppressed, so the late run.started is a duplicate and starts nothing. A watch of an earlier version
 * (no deadline here, still scheduled) is its AlertDelivery's to decide: the caller signals it. On
 * PGlite the finishing events handled while the process was busy share the statement (group commit).
 */
export async function finishWatch(db: Queryable | Db, keyring: Keyring, ref: DeliveryRef, event: ExecutionEvent, finishedAtMs: number): Promise<FinishedWatch> {
  const row = { ref, sealed: seal(keyring, JSON.stringify(event), `${ref.projectId}/${ref.deliveryId}`), atMs: finishedAtMs };
  if ('kind' in db && db.kind === 'pglite') return batcherOf(db).finish(row);
  return (await finishWatches(db, [row]))[0];
}

/** finishWatch's statement for rows of distinct deliveries. */
async function finishWatches(db: Queryable, rows: WatchRow[]): Promise<FinishedWatch[]> {
  const answered = await db.query<{ delivery_id: string; status: string; watch_deadline: Date | null; created: boolean; before: string | null }>(
    `WITH v AS (${WATCH_ROWS}),
     before AS (SELECT d.delivery_id, d.status FROM alert_deliveries d JOIN v USING (delivery_id)),
     up AS (INSERT INTO alert_deliveries AS d (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, key_id, event_sealed, run_finished_at)
       SELECT delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, 'suppressed', key_id, event_sealed, at FROM v
       ON CONFLICT (delivery_id) DO UPDATE SET
         run_finished_at = LEAST(COALESCE(d.run_finished_at, EXCLUDED.run_finished_at), EXCLUDED.run_finished_at),
         status = CASE WHEN d.status = 'scheduled' AND d.watch_fired_at IS NULL AND d.watch_deadline IS NOT NULL AND EXCLUDED.run_finished_at <= d.watch_deadline THEN 'suppressed' ELSE d.status END,
         updated_at = now()
       RETURNING d.delivery_id, d.status, d.watch_deadline, (xmax = 0) AS created)
     SELECT up.*, before.status AS before FROM up LEFT JOIN before USING (delivery_id)`,
    watchParams(rows),
  );
  const byId = new Map(answered.map((r) => [r.delivery_id, r]));
  return rows.map(({ ref }) => {
    const r = byId.get(ref.deliveryId);
    if (!r) throw new Error(`finishWatch: no answer for ${ref.deliveryId}`);
    return { status: r.status, watchDeadlineMs: ms(r.watch_deadline), created: r.created, suppressed: !r.created && r.status === 'suppressed' && r.before !== 'suppressed' };
  });
}

/** A fired watch: its row's sealed event and deadline, for the AlertDelivery that sends its alert. */
export interface FiredWatch {
  ref: DeliveryRef;
  event: ExecutionEvent;
  deadlineMs: number;
  firedAtMs: number;
  createdAt: string;
}

interface FiredRow {
  delivery_id: string; project_id: string; config_id: string; workflow_id: string; run_id: string; event_id: string;
  key_id: string; event_sealed: string; watch_deadline: Date; watch_fired_at: Date; created_at: Date;
}

/**
 * The watcher's claim at `nowMs` (its workflow clock): every open watch of the config whose deadline
 * has passed is marked fired, decided by time: a run recorded as finished at or before its deadline
 * ends suppressed (a finish recorded while the watch was open suppresses it already: this is the
 * belt to that), any other is late and stays scheduled until its AlertDelivery routes it. Answers the
 * late ones not yet started, those of earlier claims too (a watcher cut off between the claim and the
 * start), at most `limit`.
 */
export async function claimDueWatches(db: Queryable, keyring: Keyring, configId: string, nowMs: number, limit: number): Promise<{ late: FiredWatch[]; suppressed: number }> {
  const claimed = await db.query<{ status: string }>(
    `UPDATE alert_deliveries SET watch_fired_at = $2, updated_at = now(),
       status = CASE WHEN run_finished_at IS NOT NULL AND run_finished_at <= watch_deadline THEN 'suppressed' ELSE status END
     WHERE config_id = $1 AND ${OPEN} AND watch_deadline <= $2
     RETURNING status`,
    [configId, ts(nowMs)],
  );
  const rows = await db.query<FiredRow>(
    `SELECT delivery_id, project_id, config_id, workflow_id, run_id, event_id, key_id, event_sealed, watch_deadline, watch_fired_at, created_at
     FROM alert_deliveries WHERE config_id = $1 AND watch_fired_at IS NOT NULL AND watch_started_at IS NULL AND status = 'scheduled'
     ORDER BY watch_deadline LIMIT $2`,
    [configId, limit],
  );
  const late = rows.map((r) => ({
    ref: { deliveryId: r.delivery_id, projectId: r.project_id, configId: r.config_id, workflowId: r.workflow_id, runId: r.run_id, eventId: r.event_id, condition: 'delay' as const },
    event: JSON.parse(open(keyring, { keyId: r.key_id, ciphertext: r.event_sealed }, `${r.project_id}/${r.delivery_id}`)) as ExecutionEvent,
    deadlineMs: ms(r.watch_deadline)!,
    firedAtMs: ms(r.watch_fired_at)!,
    createdAt: new Date(r.created_at).toISOString(),
  }));
  return { late, suppressed: claimed.filter((c) => c.status === 'suppressed').length };
}

/** The fired watches whose AlertDelivery workflows were started (or found started). */
export async function markWatchesStarted(db: Queryable, deliveryIds: string[]): Promise<void> {
  if (deliveryIds.length === 0) return;
  await db.query(`UPDATE alert_deliveries SET watch_started_at = now() WHERE delivery_id = ANY($1::text[]) AND watch_started_at IS NULL`, [deliveryIds]);
}

export interface WatcherWake {
  /** the earliest open deadline, which the watcher is now committed to wake at; null: none open */
  wakeAtMs: number | null;
  /** open watches of the config (for the watcher's details in the Web UI) */
  open: number;
  /** fired watches still to start (a pass that hit its limit): the watcher goes round again at once */
  unstarted: number;
}

/**
 * Under the watcher row's lock: the earliest open deadline, written as wake_at (see the lock order
 * above). With `endIfIdle` and no open watch, wake_at is set NULL in the same transaction, so the
 * next run.started signals-with-start a new watcher.
 */
export async function settleWake(db: Db, configId: string, projectId: string, hooks: WatchHooks = {}): Promise<WatcherWake> {
  return db.transaction(async (tx) => {
    await readCommitted(db, tx);
    // not for a config deleted (or a project erased) while this pass ran: its row stays gone
    await tx.query(
      `INSERT INTO delay_watchers (config_id, project_id) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM alert_configs WHERE id = $1) ON CONFLICT (config_id) DO NOTHING`,
      [configId, projectId],
    );
    await tx.query(`SELECT wake_at FROM delay_watchers WHERE config_id = $1 FOR UPDATE`, [configId]);
    await hooks.afterLock?.();
    const [row] = await tx.query<{ wake_at: Date | null; open: number; unstarted: number }>(
      `SELECT (SELECT min(watch_deadline) FROM alert_deliveries WHERE config_id = $1 AND ${OPEN}) AS wake_at,
              (SELECT count(*)::int FROM alert_deliveries WHERE config_id = $1 AND ${OPEN}) AS open,
              (SELECT count(*)::int FROM alert_deliveries WHERE config_id = $1 AND watch_fired_at IS NOT NULL AND watch_started_at IS NULL AND status = 'scheduled') AS unstarted`,
      [configId],
    );
    await tx.query(`UPDATE delay_watchers SET wake_at = $2, updated_at = now() WHERE config_id = $1`, [configId, row.wake_at]);
    return { wakeAtMs: ms(row.wake_at), open: row.open, unstarted: row.unstarted };
  });
}

/**
 * A deleted config's watcher row, and its open watches ended failed (as a watch of an earlier version
 * that fired after the delete failed: "the alert config was deleted"), without an operator alert.
 */
export async function forgetWatcher(db: Db, configId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(`DELETE FROM delay_watchers WHERE config_id = $1`, [configId]);
    await tx.query(
      `UPDATE alert_deliveries SET status = 'failed', error = 'the alert config was deleted', watch_fired_at = COALESCE(watch_fired_at, now()), updated_at = now()
       WHERE config_id = $1 AND (${OPEN} OR (status = 'scheduled' AND watch_fired_at IS NOT NULL AND watch_started_at IS NULL))`,
      [configId],
    );
  });
}

/**
 * After a signal told the watcher of `deadlineMs`: its wake is at or before it, so later run.started
 * events with a deadline no earlier need not signal (a backlog replayed, or a watcher overdue, would
 * otherwise signal once per run). Raising the stored wake is always safe (a run.started only decides
 * whether to signal from it), and so is lowering it to a deadline the watcher was just told of.
 */
export async function noteWakeSignalled(db: Queryable, configId: string, deadlineMs: number, nowMs = Date.now()): Promise<void> {
  await db.query(
    `UPDATE delay_watchers SET wake_at = $2, updated_at = now() WHERE config_id = $1 AND (wake_at IS NULL OR wake_at > $2 OR wake_at < $3)`,
    [configId, ts(deadlineMs), ts(nowMs - WAKE_OVERDUE_MS)],
  );
}

/** A watch as its row tells it, for the delivery's timeline (api/timeline.ts) before or beside its workflow. */
export interface WatchStory {
  status: string;
  startedAt: string;
  deadline: string;
  firedAt: string | null;
  runFinishedAt: string | null;
}

export async function watchStory(db: Queryable, projectId: string, deliveryId: string): Promise<WatchStory | undefined> {
  const rows = await db.query<{ status: string; created_at: Date; watch_deadline: Date | null; watch_fired_at: Date | null; run_finished_at: Date | null }>(
    `SELECT status, created_at, watch_deadline, watch_fired_at, run_finished_at FROM alert_deliveries WHERE project_id = $1 AND delivery_id = $2`,
    [projectId, deliveryId],
  );
  const r = rows[0];
  if (!r?.watch_deadline) return undefined;
  const iso = (d: Date | null) => (d === null ? null : new Date(d).toISOString());
  return { status: r.status, startedAt: iso(r.created_at)!, deadline: iso(r.watch_deadline)!, firedAt: iso(r.watch_fired_at), runFinishedAt: iso(r.run_finished_at) };
}
