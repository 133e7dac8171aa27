import path from 'node:path';
import { z } from 'zod';
import { parseEgressPolicy, type EgressPolicy } from './egress';
import { plainWebhookUrlSchema, secretSchema } from './schemas';

/**
 * Every environment variable the service reads, parsed and validated once.
 * docs/configuration.md is generated from their descriptions (npm run docs).
 */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const optionalCount = z.coerce.number().int().min(1).optional();
const optionalText = z.string().trim().optional().transform((v) => (v ? v : undefined));

/** requests a minute per API token (200/s): above what one MeshHook sends when it reports every run of a busy project */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 12_000;

export const envSchema = z.object({
  PORT: port(3000).describe('API port'),
  HOST: z.string().default('127.0.0.1').describe('API listen address (`0.0.0.0` in the container image)'),
  DATA_DIR: z.string().default('./data').describe('embedded mode: PGlite files, dev server database and log, generated key and token'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('`debug`, `info`, `warn` or `error`; the lines of a start and a stop (waiting for a dependency, `ready`, `stopped`) show at every level ([observability](observability.md#logs))'),
  LOG_FORMAT: z
    .enum(['auto', 'json', 'pretty'])
    .default('auto')
    .describe('`json`: one JSON object per line (pino); `pretty`: readable lines; `auto`: pretty in a terminal, JSON when the output is not a TTY'),
  ALERTS_METRICS_PORT: z
    .string()
    .trim()
    .optional()
    .transform((v) => (v ? Number(v) : undefined))
    .pipe(z.number().int().min(1).max(65535).optional())
    .describe('serve `GET /metrics` on this port of `HOST` too: how a worker-only process (`npm run worker`, no API) is scraped ([observability](observability.md#scraping-split-processes)); unset: only the API serves it'),
  TRUST_PROXY: bool.describe('trust `X-Forwarded-*` from a TLS-terminating proxy in front of the API ([HTTPS](security.md#https))'),

  TEMPORAL_ADDRESS: optionalText.describe('`host:port` of a Temporal frontend to join; unset: the embedded dev server'),
  TEMPORAL_NAMESPACE: z.string().default('default').describe('namespace of the workflows'),
  TEMPORAL_TASK_QUEUE: z.string().default('meshhook-alerts').describe('task queue of the workflows'),
  TEMPORAL_TLS: bool.describe('connect to Temporal over TLS (implied by `TEMPORAL_TLS_CERT_PATH`, `TEMPORAL_TLS_CA_PATH`, `TEMPORAL_TLS_SERVER_NAME` and `TEMPORAL_API_KEY`)'),
  TEMPORAL_TLS_CERT_PATH: optionalText.describe('client certificate (PEM) for mTLS; with `TEMPORAL_TLS_KEY_PATH`, both or neither'),
  TEMPORAL_TLS_KEY_PATH: optionalText.describe('client private key (PEM) for mTLS; with `TEMPORAL_TLS_CERT_PATH`, both or neither'),
  TEMPORAL_TLS_CA_PATH: optionalText.describe('CA certificate (PEM) of the Temporal server'),
  TEMPORAL_TLS_SERVER_NAME: optionalText.describe('server name to verify, when it differs from the address'),
  TEMPORAL_API_KEY: optionalText.describe('API key (Temporal Cloud)'),
  TEMPORAL_CLI_PATH: optionalText.describe('embedded mode: the Temporal CLI to use (else `temporal` on `PATH`, a cached copy, or one the project installs)'),
  TEMPORAL_DEV_PORT: port(7233).describe('embedded mode: the dev server\'s gRPC port'),
  TEMPORAL_UI_PORT: port(8233).describe('embedded mode: the dev server\'s Web UI port'),
  TEMPORAL_UI_PUBLIC_URL: optionalText.describe('Web UI base URL for links in delivery answers; its origin may call `/codec`; unset: the embedded UI'),
  TEMPORAL_DEV_SQLITE_PRAGMAS: z
    .string()
    .default('journal_mode=WAL,synchronous=OFF')
    .describe(
      'embedded mode: SQLite pragmas of the dev server. Without fsync a killed process loses nothing (the OS holds the writes), but a power loss may lose the last moments; `journal_mode=WAL,synchronous=FULL` survives that too, at a fraction of the throughput',
    ),

  // Worker tuning (npm run bench:tuning measures them); unset keeps the Temporal SDK's default.
  TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: optionalCount.describe('workflows a worker keeps cached; unset: the Temporal SDK\'s default ([benchmarks](benchmarks.md#tuning))'),
  TEMPORAL_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: optionalCount.describe('workflow tasks a worker runs at once; unset: the Temporal SDK\'s default'),
  TEMPORAL_WORKER_MAX_CONCURRENT_ACTIVITIES: optionalCount.describe('activities a worker runs at once; unset: the Temporal SDK\'s default'),
  TEMPORAL_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: optionalCount.describe('local activities (first attempts) a worker runs at once; unset: the Temporal SDK\'s default'),
  TEMPORAL_WORKER_WORKFLOW_THREADS: optionalCount.describe('threads that run workflow code; unset: the Temporal SDK\'s default'),
  ALERTS_EAGER_WORKFLOW_START: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true')
    .describe(
      'eager workflow start: the start\'s answer hands the first workflow task straight to the worker of the process that started it, saving a round trip through Temporal\'s matching (at 20/s on the dev server: p50 22–26 ms with it, 43–51 ms without; [benchmarks](benchmarks.md#tuning))',
    ),

  DATABASE_URL: optionalText.describe('PostgreSQL 15+ (or Supabase); TLS with `?sslmode=…`; unset: the embedded PGlite in `DATA_DIR`'),
  MESHHOOK_DATABASE_URL: optionalText.describe(
    "MeshHook's own PostgreSQL: the service reads its runs' changes (`meshhook/outbox.up.sql` applied there) and alerts on them ([MeshHook](meshhook.md)); unset: no change source",
  ),
  MESHHOOK_PROJECTS: optionalText.describe(
    "comma-separated `<MeshHook project uuid>:<alerts project>` pairs: where each MeshHook project's alerts go (an unmapped project stops the source)",
  ),
  ALERTS_STARTUP_WAIT_SECONDS: z
    .coerce.number()
    .int()
    .min(0)
    .default(120)
    .describe(
      'how long the API and a worker wait at start for PostgreSQL (`DATABASE_URL`) and Temporal (`TEMPORAL_ADDRESS`, namespace included) to come up, retrying with backoff (0.5 s doubling to 5 s) and printing a line per retry; then they exit 1; `0` fails at once',
    ),
  ALERTS_API_TOKENS: optionalText.describe('comma-separated `token:projectId` pairs stored (hashed) at start; tokens ≥ 16 characters'),
  ALERTS_ENCRYPTION_KEYS: optionalText.describe(
    'comma-separated `id:base64key` (32-byte keys); the first encrypts, all decrypt; unset: embedded mode makes a key file in `DATA_DIR`, and with `DATABASE_URL` it is required',
  ),
  ALERTS_ALLOW_PRIVATE_NETWORKS: bool.describe(
    '`true` lets webhooks target every address, loopback and private ones included: for development ([egress policy](security.md#egress-policy-ssrf-guard))',
  ),
  ALERTS_EGRESS_ALLOW: optionalText.describe(
    'comma-separated exceptions to the egress policy: hosts (`hooks.internal`, `127.0.0.1`), `*.domain` wildcards and CIDRs (`10.20.0.0/16`)',
  ),
  NODE_ENV: optionalText.describe('`production` (the container image sets it) refuses plain `http://` webhooks unless their host is in `ALERTS_EGRESS_ALLOW`'),
  ALERTS_RATE_LIMIT_PER_MINUTE: z
    .coerce.number()
    .int()
    .min(0)
    .default(DEFAULT_RATE_LIMIT_PER_MINUTE)
    .describe('requests a minute per API token, in bursts of up to a minute\'s worth; `0` turns the limit off ([rate limit](security.md#rate-limit))'),
  ALERTS_OPERATOR_WEBHOOK_URL: optionalText.pipe(plainWebhookUrlSchema.optional()).describe(
    "the deployment's operator webhook, an `https://` or `http://` URL without templates: every project's operator alerts (`delivery.exhausted`, `config.failing`, `config.disabled`, …) go there, signed with `ALERTS_OPERATOR_WEBHOOK_SECRET` ([operator alerts](operator-alerts.md)); unset: only projects' own operator webhooks",
  ),
  ALERTS_OPERATOR_WEBHOOK_SECRET: optionalText.pipe(secretSchema.optional()).describe('`whsec_…` secret that signs the deployment\'s operator alerts; required with `ALERTS_OPERATOR_WEBHOOK_URL`'),
  ALERTS_ENDPOINT_WARN_AFTER_FAILURES: z
    .coerce.number()
    .int()
    .min(1)
    .default(5)
    .describe('consecutive failed deliveries of a config after which its owner gets `config.failing` (once per failing streak); a project may set its own'),
  ALERTS_ENDPOINT_DISABLE_AFTER_SECONDS: z
    .coerce.number()
    .int()
    .min(0)
    .default(5 * 24 * 3600)
    .describe(
      'a config failing this long without a single delivered alert (and at least the warning\'s count of failures) is disabled, its alerts held; default 5 days, as the established webhook senders do; `0` never disables (a 410 still does); a project may set its own',
    ),
  ALERTS_FAILURE_RATE_THRESHOLD: z
    .coerce.number()
    .min(0)
    .max(1)
    .default(0.5)
    .describe("share of a project's attempts over the window that failed above which `delivery.failure_rate` is sent (at most once per window)"),
  ALERTS_FAILURE_RATE_WINDOW_SECONDS: z.coerce.number().int().min(10).default(300).describe('the window of `ALERTS_FAILURE_RATE_THRESHOLD`'),
  ALERTS_FAILURE_RATE_MIN_ATTEMPTS: z.coerce.number().int().min(1).default(20).describe('fewer attempts than this in the window never count as a failure rate'),
  ALERTS_DEGRADED_AFTER_SECONDS: z
    .coerce.number()
    .int()
    .min(1)
    .default(30)
    .describe('Temporal or the store unreachable this long raises `service.degraded` (sent when it recovers, if it could not be sent during)'),
  ALERTS_RETENTION_DAYS: z.coerce.number().int().min(1).default(30).describe('attempt logs, finished deliveries, held alerts and operator alerts older than this are deleted (a Temporal schedule, in small batches)'),
  ALERTS_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(365).describe('audit log entries older than this are deleted'),
  ALERTS_RETENTION_INTERVAL_SECONDS: z
    .coerce.number()
    .int()
    .min(60)
    .default(3600)
    .describe('how often the retention schedule runs its sweep (a worker start creates or updates the schedule; [retention](retention.md))'),
  ALERTS_TLS_CERT_PATH: optionalText.describe('certificate chain (PEM) with which the API serves HTTPS; with `ALERTS_TLS_KEY_PATH`, both or neither ([HTTPS](security.md#https))'),
  ALERTS_TLS_KEY_PATH: optionalText.describe('private key (PEM) with which the API serves HTTPS; with `ALERTS_TLS_CERT_PATH`, both or neither'),
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
    )
    .describe(
      'comma-separated origins (`https://temporal.example.com`) of more Temporal Web UIs that may call `/codec` from a browser; the embedded UI and `TEMPORAL_UI_PUBLIC_URL` are allowed already',
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
  if (env.ALERTS_OPERATOR_WEBHOOK_URL && !env.ALERTS_OPERATOR_WEBHOOK_SECRET) {
    throw new Error('invalid environment: ALERTS_OPERATOR_WEBHOOK_URL needs ALERTS_OPERATOR_WEBHOOK_SECRET (whsec_ followed by base64 of at least 24 random bytes)');
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
