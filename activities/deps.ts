import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/crypto';
import type { EgressPolicy } from '../lib/egress';
import type { Db } from '../store/db';

export interface ActivityDeps {
  db: Db;
  keyring: Keyring;
  /** for activities that start workflows (event routing) */
  client: Client;
  taskQueue: string;
  /** ask Temporal to hand a started delivery straight to this process's worker (default true) */
  eagerStart?: boolean;
  /** which webhook targets deliveries may connect to */
  egress: EgressPolicy;
}
