import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/crypto';
import type { EgressPolicy } from '../lib/egress';
import type { Db } from '../store/db';

/** What the API needs from the outside world; built once by main.ts or api/server.ts. */
export interface ApiDeps {
  db: Db;
  keyring: Keyring;
  /** checks webhook targets when a config is saved */
  egress: EgressPolicy;
  temporal: {
    client: Client;
    namespace: string;
    taskQueue: string;
    /** Web UI base URL, for links to a delivery's workflow */
    uiUrl?: string;
    /** ask Temporal to hand a started delivery straight to this process's worker (default true) */
    eagerStart?: boolean;
  };
}
