import type { PGlite } from '@electric-sql/pglite';

/**
 * Named prepared statements on the embedded PGlite. Its `query()` parses, analyses and plans every
 * statement afresh, in six protocol messages into the WASM module (parse, describe, bind, describe,
 * execute, sync). The store's statements are constant texts, so each is prepared once under a name
 * and from then on runs as one message (bind, execute, sync). Measured in docs/benchmarks.md
 * ("Prepared statements on PGlite").
 *
 * Only single DML statements are prepared (SELECT, INSERT, UPDATE, DELETE, WITH; never DDL), at most
 * MAX_PREPARED texts; any other statement answers undefined and the caller runs it through
 * `query()`. After a statement that changes the schema (`forget`), every text is prepared again: a
 * plan of a changed table is re-planned by PostgreSQL itself, but one whose result's columns changed
 * fails (0A000). Outside a transaction such a failure, or a statement gone (26000), is prepared again
 * once and run; inside one (a transaction of this PGlite, or a BEGIN a session sent) the failure has
 * aborted it and is the caller's. A name dropped so (forgotten or stale) is closed in the backend
 * with the next prepare, so the backend holds no more than the texts in use. Errors are PGlite's own
 * DatabaseError (its `code`, `message`, with `query` and `params` as `query()` sets them).
 *
 * The turns are PGlite's: outside a transaction `run` takes the transaction's and the query's turn
 * (as `query()` does); inside one, `runInTransaction` takes the query's turn (`runExclusive`), as
 * the transaction's `query()` does.
 */
const MAX_PREPARED = 1_000;
const PREPARABLE = /^\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH)\b/i;
/** a statement that may change a table's columns: the prepared ones are prepared again after it */
export const CHANGES_SCHEMA = /\b(?:CREATE|ALTER|DROP)\b/i;
const STALE_PLAN = new Set(['0A000', '26000']);

type Protocol = typeof import('@electric-sql/pglite').protocol;
type Parse = typeof import('@electric-sql/pglite').parse;
type BackendMessage = Awaited<ReturnType<PGlite['execProtocolStream']>>[number];

interface Statement {
  name: string;
  /** the parameters' type oids, for PGlite's serializers */
  oids: number[];
  /** the statement's RowDescription (undefined: it answers no rows) */
  rowDescription: BackendMessage | undefined;
}

export interface PreparedQueries {
  /** a statement outside a transaction; undefined when it is not one to prepare (the caller runs it through query()) */
  run<T>(sql: string, params: unknown[]): Promise<T[]> | undefined;
  /** the same, inside a transaction of this PGlite (run from the transaction's callback) */
  runInTransaction<T>(sql: string, params: unknown[]): Promise<T[]> | undefined;
  /** drops every prepared text (after a statement that changed the schema) */
  forget(): void;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function preparedQueries(pg: PGlite): Promise<PreparedQueries> {
  const { protocol, parse }: { protocol: Protocol; parse: Parse } = await import('@electric-sql/pglite');
  const wire = protocol.serialize;
  let statements = new Map<string, Statement>();
  let named = 0;
  /** names dropped here and still prepared in the backend: closed with the next prepare */
  let toClose: string[] = [];

  const prepare = async (sql: string): Promise<Statement> => {
    // names are never reused: a dropped one may still be the backend's until its close is sent
    const name = `mh_${++named}`;
    const closes = toClose.map((dropped) => wire.close({ type: 'S', name: dropped }));
    // a close runs before the parse whatever the parse answers, and closing a name never fails
    toClose = [];
    const messages = await pg.execProtocolStream(concat([...closes, wire.parse({ name, text: sql }), wire.describe({ type: 'S', name }), wire.sync()]), {
      // a prepared statement is not data: nothing to write to the file system
      syncToFs: false,
    });
    const statement = { name, oids: parse.parseDescribeStatementResults(messages), rowDescription: messages.find((m) => m.name === 'rowDescription') };
    statements.set(sql, statement);
    return statement;
  };

  const drop = (sql: string) => {
    const statement = statements.get(sql);
    if (!statement) return;
    statements.delete(sql);
    toClose.push(statement.name);
  };

  const execute = async <T>(statement: Statement, params: unknown[], inTransaction: boolean): Promise<T[]> => {
    const values = params.map((p, i) => {
      if (p === null || p === undefined) return null;
      const serialize = pg.serializers[statement.oids[i]];
      return serialize ? serialize(p) : String(p);
    });
    const messages = await pg.execProtocolStream(concat([wire.bind({ statement: statement.name, values }), wire.execute({}), wire.sync()]), {
      syncToFs: !inTransaction,
    });
    const described = statement.rowDescription ? [statement.rowDescription, ...messages] : messages;
    return parse.parseResults(described, pg.parsers)[0].rows as T[];
  };

  const runOnTurn = async <T>(sql: string, params: unknown[], inTransaction: boolean): Promise<T[]> => {
    const known = statements.get(sql);
    try {
      try {
        return await execute<T>(known ?? (await prepare(sql)), params, inTransaction);
      } catch (err) {
        if (!known || !STALE_PLAN.has((err as { code?: string }).code ?? '')) throw err;
        drop(sql);
        // in a transaction (this PGlite's, or a BEGIN a session sent through the store) the error has
        // aborted it: it is the caller's to see. Outside one, nothing of the plan ran: prepared again, once.
        if (inTransaction || pg.isInTransaction()) throw err;
        return await execute<T>(await prepare(sql), params, inTransaction);
      }
    } catch (err) {
      if (err instanceof Error && 'code' in err) Object.assign(err, { query: sql, params });
      throw err;
    }
  };

  const preparable = (sql: string) => statements.has(sql) || (statements.size < MAX_PREPARED && PREPARABLE.test(sql));

  return {
    run: <T>(sql: string, params: unknown[]) => {
      if (!preparable(sql)) return undefined;
      return pg._checkReady().then(() => pg._runExclusiveTransaction(() => pg.runExclusive(() => runOnTurn<T>(sql, params, false))));
    },
    runInTransaction: <T>(sql: string, params: unknown[]) => (preparable(sql) ? pg.runExclusive(() => runOnTurn<T>(sql, params, true)) : undefined),
    forget: () => {
      toClose.push(...[...statements.values()].map((s) => s.name));
      statements = new Map();
    },
  };
}
