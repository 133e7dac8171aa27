import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/crypto';
import type { Db } from '../store/db';

export interface ActivityDeps {
  db: Db;
  keyring: Keyring;
  /** for activities that start workflows (event routing) */
  client: Client;
  taskQueue: string;
}
