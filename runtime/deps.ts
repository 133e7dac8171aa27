import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/crypto';
import type { EgressPolicy } from '../lib/egress';
import { loadEnv, type Env } from '../lib/env';
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
  /** the deployment's operating settings (lib/env.ts); a project's own settings (project_settings) override health and failureRate */
  operations: Operations;
}

export interface Operations {
  /** ALERTS_OPERATOR_WEBHOOK_URL and its secret: where every project's operator alerts go */
  operatorWebhook?: { url: string; secret: string };
  health: { warnAfterFailures: number; disableAfterSeconds: number };
  failureRate: { threshold: number; windowSeconds: number; minAttempts: number };
  degradedAfterSeconds: number;
  retention: { days: number; auditDays: number };
}

/** The operating settings of an environment. */
export function operationsOf(env: Pick<Env, 'ALERTS_OPERATOR_WEBHOOK_URL' | 'ALERTS_OPERATOR_WEBHOOK_SECRET' | 'ALERTS_ENDPOINT_WARN_AFTER_FAILURES' | 'ALERTS_ENDPOINT_DISABLE_AFTER_SECONDS' | 'ALERTS_FAILURE_RATE_THRESHOLD' | 'ALERTS_FAILURE_RATE_WINDOW_SECONDS' | 'ALERTS_FAILURE_RATE_MIN_ATTEMPTS' | 'ALERTS_DEGRADED_AFTER_SECONDS' | 'ALERTS_RETENTION_DAYS' | 'ALERTS_AUDIT_RETENTION_DAYS'>): Operations {
  return {
    operatorWebhook: env.ALERTS_OPERATOR_WEBHOOK_URL && env.ALERTS_OPERATOR_WEBHOOK_SECRET ? { url: env.ALERTS_OPERATOR_WEBHOOK_URL, secret: env.ALERTS_OPERATOR_WEBHOOK_SECRET } : undefined,
    health: { warnAfterFailures: env.ALERTS_ENDPOINT_WARN_AFTER_FAILURES, disableAfterSeconds: env.ALERTS_ENDPOINT_DISABLE_AFTER_SECONDS },
    failureRate: { threshold: env.ALERTS_FAILURE_RATE_THRESHOLD, windowSeconds: env.ALERTS_FAILURE_RATE_WINDOW_SECONDS, minAttempts: env.ALERTS_FAILURE_RATE_MIN_ATTEMPTS },
    degradedAfterSeconds: env.ALERTS_DEGRADED_AFTER_SECONDS,
    retention: { days: env.ALERTS_RETENTION_DAYS, auditDays: env.ALERTS_AUDIT_RETENTION_DAYS },
  };
}

/** The one bag, from the parsed environment and what boot opened: the only place a setting is copied into it. */
export function serviceDeps(
  env: Pick<Env, 'egress' | 'ALERTS_EAGER_WORKFLOW_START'> & Parameters<typeof operationsOf>[0],
  opened: { db: Db; keyring: Keyring; temporal: Pick<ServiceDeps['temporal'], 'client' | 'namespace' | 'taskQueue'>; temporalUiUrl?: string },
): ServiceDeps {
  const { client, namespace, taskQueue } = opened.temporal;
  return {
    db: opened.db,
    keyring: opened.keyring,
    egress: env.egress,
    temporal: { client, namespace, taskQueue, eagerStart: env.ALERTS_EAGER_WORKFLOW_START, uiUrl: opened.temporalUiUrl },
    operations: operationsOf(env),
  };
}

/** The operating settings of an empty environment: every default (tests that build their own deps). */
export const defaultOperations = (): Operations => operationsOf(loadEnv({}));
