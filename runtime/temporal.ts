import fs from 'node:fs';
import { Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { alertsDataConverter } from '../lib/codec';
import type { Keyring } from '../lib/crypto';
import type { Env } from '../lib/env';

/** TLS / mTLS / API-key options for the Temporal connection, from the environment. */
export function temporalTls(env: Env) {
  const read = (file: string | undefined) => (file ? fs.readFileSync(file) : undefined);
  const useTls = env.TEMPORAL_TLS || env.TEMPORAL_TLS_CERT_PATH !== undefined || env.TEMPORAL_TLS_CA_PATH !== undefined || env.TEMPORAL_API_KEY !== undefined;
  if (!useTls) return undefined;
  return {
    serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME,
    serverRootCACertificate: read(env.TEMPORAL_TLS_CA_PATH),
    clientCertPair: env.TEMPORAL_TLS_CERT_PATH
      ? { crt: read(env.TEMPORAL_TLS_CERT_PATH)!, key: read(env.TEMPORAL_TLS_KEY_PATH)! }
      : undefined,
  };
}

export interface TemporalHandles {
  /** one native connection, shared by the worker and the client (eager workflow start needs both on it) */
  connection: NativeConnection;
  client: Client;
  namespace: string;
  taskQueue: string;
}

/**
 * Connects to Temporal and checks that the namespace exists (a worker cannot start without it), so that a
 * start can wait for a cluster that is still coming up. Rejects with the SDK's error; temporalNotUpReason
 * tells whether waiting may help.
 */
export async function connectTemporal(env: Env, address: string, keyring: Keyring): Promise<TemporalHandles> {
  const connection = await NativeConnection.connect({
    address,
    tls: temporalTls(env),
    apiKey: env.TEMPORAL_API_KEY,
  });
  try {
    await connection.workflowService.describeNamespace({ namespace: env.TEMPORAL_NAMESPACE });
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
  const client = new Client({ connection, namespace: env.TEMPORAL_NAMESPACE, dataConverter: alertsDataConverter(keyring) });
  return { connection, client, namespace: env.TEMPORAL_NAMESPACE, taskQueue: env.TEMPORAL_TASK_QUEUE };
}

const GRPC_UNAVAILABLE = 14;
const GRPC_NOT_FOUND = 5;
const GRPC_DEADLINE_EXCEEDED = 4;

/**
 * Why `err` (from connectTemporal) says Temporal is not up yet: nothing listening, a name that does not
 * resolve yet, a frontend still starting, a namespace not created yet. Undefined when waiting would not
 * help (bad credentials, a TLS mismatch).
 */
export function temporalNotUpReason(err: unknown, namespace: string): string | undefined {
  const { code, message = '' } = err as { code?: number; message?: string };
  if (code === GRPC_NOT_FOUND && /namespace/i.test(message)) return `namespace ${namespace} not found yet`;
  if (code === GRPC_UNAVAILABLE) return 'UNAVAILABLE';
  if (code === GRPC_DEADLINE_EXCEEDED) return 'DEADLINE_EXCEEDED';
  if (/ConnectionRefused|Connection refused/.test(message)) return 'ECONNREFUSED';
  if (/ConnectionReset|Connection reset/.test(message)) return 'ECONNRESET';
  if (/TimedOut|timed out/i.test(message)) return 'ETIMEDOUT';
  if (/dns error|failed to lookup address/i.test(message)) return 'ENOTFOUND';
  if (/tcp connect error|connection closed|broken pipe/i.test(message)) return 'connection failed';
  return undefined;
}
