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

export async function connectTemporal(env: Env, address: string, keyring: Keyring): Promise<TemporalHandles> {
  const connection = await NativeConnection.connect({
    address,
    tls: temporalTls(env),
    apiKey: env.TEMPORAL_API_KEY,
  });
  const client = new Client({ connection, namespace: env.TEMPORAL_NAMESPACE, dataConverter: alertsDataConverter(keyring) });
  return { connection, client, namespace: env.TEMPORAL_NAMESPACE, taskQueue: env.TEMPORAL_TASK_QUEUE };
}
