import fs from 'node:fs';
import path from 'node:path';
import { openPglite, openPostgres, type Db } from '../../store/db';
import { migrate } from '../../store/migrate';
import { startPostgres, type TestPostgres } from './postgres';
import { atProcessEnd, makeScratchDir } from './scratch';

/**
 * Real stores for tests, both kinds the service runs on:
 *
 *   for (const kind of STORE_KINDS) describe(`… (${kind})`, () => { const store = useStore(kind); … });
 *
 * - `pglite`: a fresh embedded PGlite in its own temp folder. initdb under PGlite takes seconds, so the
 *   first store runs it once into a template folder and every store after starts from a copy of that
 *   pristine cluster (well under a second).
 * - `postgres`: a fresh database on one PostgreSQL server shared by the whole mocha run (started on first
 *   use, stopped by the root hook in test/setup/databases.ts), or on TEST_DATABASE_URL's server.
 */
export type StoreKind = 'pglite' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['pglite', 'postgres'];

export interface TestStore {
  readonly kind: StoreKind;
  readonly db: Db;
  /** PostgreSQL only: the URL of this store's database, to open more pools (more connections) on it */
  readonly url?: string;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** run migrate() before handing the store over (default true) */
  migrated?: boolean;
}

// ------------------------------------------------------------ the shared PostgreSQL server

let postgres: Promise<TestPostgres> | undefined;

/** the PostgreSQL server of this test run, started on first use */
export function sharedPostgres(): Promise<TestPostgres> {
  if (!postgres) {
    postgres = startPostgres();
    postgres.catch(() => {
      postgres = undefined; // let the next caller report the problem again rather than a stale promise
    });
  }
  return postgres;
}

// ------------------------------------------------------------ PGlite from a template

let pgliteRoot: string | undefined;
let pgliteTemplate: Promise<string> | undefined;
let pgliteCount = 0;
let forgetPgliteRoot: () => void = () => undefined;

function pgliteDir(): string {
  if (!pgliteRoot) {
    pgliteRoot = makeScratchDir('meshhook-alerts-pglite-');
    const root = pgliteRoot;
    forgetPgliteRoot = atProcessEnd(() => fs.rmSync(root, { recursive: true, force: true }));
  }
  return pgliteRoot;
}

function templateCluster(): Promise<string> {
  pgliteTemplate ??= (async () => {
    const dir = path.join(pgliteDir(), 'template');
    const db = await openPglite(dir); // runs initdb
    await db.close();
    return dir;
  })();
  return pgliteTemplate;
}

async function openPgliteStore(): Promise<{ db: Db; cleanup: () => void }> {
  const template = await templateCluster();
  const dir = path.join(pgliteDir(), `store-${++pgliteCount}`);
  fs.cpSync(template, dir, { recursive: true });
  const db = await openPglite(dir);
  return { db, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// ------------------------------------------------------------ stores

/** Opens a fresh store of that kind (migrated unless told otherwise). close() removes it. */
export async function openStore(kind: StoreKind, options: StoreOptions = {}): Promise<TestStore> {
  let store: TestStore;
  if (kind === 'pglite') {
    const { db, cleanup } = await openPgliteStore();
    store = {
      kind,
      db,
      async close() {
        await db.close();
        cleanup();
      },
    };
  } else {
    const server = await sharedPostgres();
    const url = await server.createDatabase();
    const db = await openPostgres(url);
    store = {
      kind,
      db,
      url,
      async close() {
        await db.close();
        await server.dropDatabase(url);
      },
    };
  }
  if (options.migrated ?? true) {
    try {
      await migrate(store.db);
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}

/** Runs fn with a fresh store and closes it afterwards, whatever fn does. */
export async function withStore<T>(kind: StoreKind, fn: (store: TestStore) => Promise<T>, options: StoreOptions = {}): Promise<T> {
  const store = await openStore(kind, options);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * One fresh store for the enclosing describe: opened in before(), closed in after(). Its tests share it,
 * so each should use its own project id. Read `.db` inside tests and hooks, not at describe time.
 */
export function useStore(kind: StoreKind, options: StoreOptions = {}): TestStore {
  let store: TestStore | undefined;
  prepareStore(kind);
  before(async () => {
    store = await openStore(kind, options);
  });
  after(async () => {
    await store?.close();
    store = undefined;
  });
  const current = () => {
    if (!store) throw new Error('useStore(): the store is only open inside this describe’s tests and hooks');
    return store;
  };
  return {
    kind,
    get db() {
      return current().db;
    },
    get url() {
      return current().url;
    },
    close: () => current().close(),
  };
}

/**
 * A before() hook that gets the kind's slow one-time start out of the way with a long timeout: the
 * PostgreSQL server (initdb, maybe apt-get) or PGlite's template cluster (initdb under WASM).
 */
export function prepareStore(kind: StoreKind): void {
  before(async function () {
    this.timeout(10 * 60_000);
    if (kind === 'postgres') await sharedPostgres();
    else await templateCluster();
  });
}

/** Root afterAll (test/setup/databases.ts): stops the shared PostgreSQL server and removes PGlite folders. */
export async function closeTestDatabases(): Promise<void> {
  const server = postgres;
  postgres = undefined;
  try {
    if (server) await (await server.catch(() => undefined))?.stop();
  } finally {
    if (pgliteRoot) fs.rmSync(pgliteRoot, { recursive: true, force: true });
    forgetPgliteRoot();
    pgliteRoot = undefined;
    pgliteTemplate = undefined;
  }
}
