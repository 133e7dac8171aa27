import path from 'node:path';
import { z } from 'zod';
import { parseEgressPolicy, type EgressPolicy } from './egress';

/**
 * Every environment variable the service reads, parsed and validated once.
 * The README's configuration table lists the same names.
 */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const optionalCount = z.coerce.number().int().min(1).optional();
const optionalText = z.string().trim().optional().transform((v) => (v ? v : undefined));

/** requests a minute per API token: well above what MeshHook and a person at the UI send */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 1200;

const envSchema = z.object({
  PORT: port(3000),
  HOST: z.string().default('127.0.0.1'),
  DATA_DIR: z.string().default('./data'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** trust X-Forwarded-* from a TLS-terminating proxy in front of the API */
  TRUST_PROXY: bool,

  TEMPORAL_ADDRESS: optionalText,
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default('meshhook-alerts'),
  TEMPORAL_TLS: bool,
  TEMPORAL_TLS_CERT_PATH: optionalText,
  TEMPORAL_TLS_KEY_PATH: optionalText,
  TEMPORAL_TLS_CA_PATH: optionalText,
  TEMPORAL_TLS_SERVER_NAME: optionalText,
  TEMPORAL_API_KEY: optionalText,
  TEMPORAL_CLI_PATH: optionalText,
  TEMPORAL_DEV_PORT: port(7233),
  TEMPORAL_UI_PORT: port(8233),
  TEMPORAL_UI_PUBLIC_URL: optionalText,
  /**
   * SQLite pragmas of the embedded dev server. WAL without fsync is safe when a
   * process is killed (the OS keeps the writes) but may lose the last moments of
   * work if the machine itself loses power; synchronous=FULL survives that too, at
   * a fraction of the throughput.
   */
  TEMPORAL_DEV_SQLITE_PRAGMAS: z.string().default('journal_mode=WAL,synchronous=OFF'),

  /**
   * Worker tuning (npm run bench:tuning measures them); unset keeps the Temporal SDK's default.
   * TEMPORAL_WORKER_WORKFLOW_THREADS: threads that run workflow code.
   */
  TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: optionalCount,
  TEMPORAL_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: optionalCount,
  TEMPORAL_WORKER_MAX_CONCURRENT_ACTIVITIES: optionalCount,
  TEMPORAL_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: optionalCount,
  TEMPORAL_WORKER_WORKFLOW_THREADS: optionalCount,
  /** eager workflow start: Temporal hands a started delivery straight to the worker of the process that started it */
  ALERTS_EAGER_WORKFLOW_START: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),

  DATABASE_URL: optionalText,
  /** MeshHook's own PostgreSQL: the service reads its runs' changes (meshhook/outbox.up.sql applied there) and alerts on them */
  MESHHOOK_DATABASE_URL: optionalText,
  /** `<MeshHook project uuid>:<alerts project>` pairs, comma-separated: where each MeshHook project's alerts go (an unmapped project stops the source) */
  MESHHOOK_PROJECTS: optionalText,
  /** how long a start waits for PostgreSQL (DATABASE_URL) and Temporal (TEMPORAL_ADDRESS) to come up, retrying; 0 fails at once */
  ALERTS_STARTUP_WAIT_SECONDS: z.coerce.number().int().min(0).default(120),
  ALERTS_API_TOKENS: optionalText,
  ALERTS_ENCRYPTION_KEYS: optionalText,
  /** webhooks may target any address (development); lib/egress.ts */
  ALERTS_ALLOW_PRIVATE_NETWORKS: bool,
  /** comma-separated hosts, *.domains and CIDRs that webhooks may target although their addresses are refused */
  ALERTS_EGRESS_ALLOW: optionalText,
  /** `production`: plain http:// webhooks only to hosts allowed in ALERTS_EGRESS_ALLOW */
  NODE_ENV: optionalText,
  /** requests per minute per API token (a token bucket that holds a minute's worth); 0 turns the limit off */
  ALERTS_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(DEFAULT_RATE_LIMIT_PER_MINUTE),
  /** the API serves HTTPS with this certificate chain and key (PEM files); both or neither */
  ALERTS_TLS_CERT_PATH: optionalText,
  ALERTS_TLS_KEY_PATH: optionalText,
  /** origins (scheme://host[:port]) of Temporal Web UIs that may call the codec endpoint, comma-separated; the UI of TEMPORAL_UI_PUBLIC_URL and the embedded one are added */
  ALERTS_CODEC_CORS_ORIGINS: z
    .string()
    .default('')
    .transform((spec, ctx) =>
      spec
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((origin) => {
          const parsed = URL.canParse(origin) ? new URL(origin) : undefined;
          if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.pathname !== '/' || parsed.search || parsed.hash || parsed.username) {
            ctx.addIssue({ code: 'custom', message: `"${origin}" is not an origin such as https://temporal-ui.example.com:8080` });
          }
          return parsed?.origin ?? origin;
        }),
    ),
});

export type Env = z.infer<typeof envSchema> & { dataDir: string; embeddedTemporal: boolean; embeddedDatabase: boolean; egress: EgressPolicy };

export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid environment:\n${lines.join('\n')}`);
  }
  const env = parsed.data;
  if ((env.TEMPORAL_TLS_CERT_PATH === undefined) !== (env.TEMPORAL_TLS_KEY_PATH === undefined)) {
    throw new Error('invalid environment: TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH go together (mTLS needs both)');
  }
  if ((env.ALERTS_TLS_CERT_PATH === undefined) !== (env.ALERTS_TLS_KEY_PATH === undefined)) {
    throw new Error('invalid environment: ALERTS_TLS_CERT_PATH and ALERTS_TLS_KEY_PATH go together (HTTPS needs both)');
  }
  return {
    ...env,
    dataDir: path.resolve(env.DATA_DIR),
    embeddedTemporal: env.TEMPORAL_ADDRESS === undefined,
    embeddedDatabase: env.DATABASE_URL === undefined,
    egress: egressPolicy(env),
  };
}

function egressPolicy(env: z.infer<typeof envSchema>): EgressPolicy {
  try {
    return parseEgressPolicy({ allow: env.ALERTS_EGRESS_ALLOW, allowPrivateNetworks: env.ALERTS_ALLOW_PRIVATE_NETWORKS, production: env.NODE_ENV === 'production' });
  } catch (err) {
    throw new Error(`invalid environment: ${(err as Error).message}`);
  }
}

/** `token:projectId` pairs of ALERTS_API_TOKENS. */
export function parseTokenSeeds(spec: string | undefined): { token: string; projectId: string }[] {
  if (!spec) return [];
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((pair) => {
      const sep = pair.lastIndexOf(':');
      const token = pair.slice(0, sep);
      const projectId = pair.slice(sep + 1);
      if (sep <= 0 || !projectId) throw new Error('ALERTS_API_TOKENS must be comma-separated token:projectId pairs');
      if (token.length < 16) throw new Error('ALERTS_API_TOKENS: each token must be at least 16 characters');
      if (!/^[A-Za-z0-9_.-]{1,100}$/.test(projectId)) throw new Error(`ALERTS_API_TOKENS: project id "${projectId}" may contain only letters, digits, _ . -`);
      return { token, projectId };
    });
}
