import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/crypto';
import type { EgressPolicy } from '../lib/egress';
import type { Env } from '../lib/env';
import type { Db } from '../store/db';

/**
 * What the service is built from: the store, the keyring, the egress policy and Temporal. Built once
 * by runtime/boot.ts from the environment (lib/env.ts) and handed whole to the API, the activities
 * and the dispatch code they share, so that no layer copies a setting into a bag of its own.
 */
export interface ServiceDeps {
  db: Db;
  keyring: Keyring;
  /** which webhook targets deliveries may connect to, and configs may name */
  egress: EgressPolicy;
  temporal: {
    client: Client;
    namespace: string;
    taskQueue: string;
    /** ALERTS_EAGER_WORKFLOW_START: the start's answer carries the delivery's first workflow task to this process's worker */
    eagerStart: boolean;
    /** Web UI base URL, for links to a delivery's workflow */
    uiUrl?: string;
  };
}

/** The one bag, from the parsed environment and what boot opened: the only place a setting is copied into it. */
export function serviceDeps(
  env: Pick<Env, 'egress' | 'ALERTS_EAGER_WORKFLOW_START'>,
  opened: { db: Db; keyring: Keyring; temporal: Pick<ServiceDeps['temporal'], 'client' | 'namespace' | 'taskQueue'>; temporalUiUrl?: string },
): ServiceDeps {
  const { client, namespace, taskQueue } = opened.temporal;
  return {
    db: opened.db,
    keyring: opened.keyring,
    egress: env.egress,
    temporal: { client, namespace, taskQueue, eagerStart: env.ALERTS_EAGER_WORKFLOW_START, uiUrl: opened.temporalUiUrl },
  };
}
