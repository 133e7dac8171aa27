import { Writable } from 'node:stream';
import type { Logger as TemporalLogger, LogLevel as TemporalLogLevel, LogMetadata } from '@temporalio/common';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { maskUrl } from './audit';

/**
 * The service's structured log: pino, one JSON object per line when the output is not a terminal
 * (or LOG_FORMAT=json), readable lines in a terminal. Every line names its component; delivery lines
 * carry deliveryId, configId, projectId, runId, attempt, outcome and durationMs (docs/observability.md).
 * Secrets, header values and the parts of a URL that may hold a credential are never logged: every
 * URL in a line, in a field named `url`, in a message or in any other string (nested ones included),
 * shows as its scheme and host only (maskUrl, the audit log's rule: a Slack, Discord or Teams
 * webhook's path is its secret), and the redaction below masks the fields that hold secrets whatever
 * a caller passes.
 */

export type LogFormat = 'auto' | 'json' | 'pretty';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Fields that may hold a secret, a credential, header values or a request body, wherever a caller puts them. */
const SENSITIVE = ['secret', 'secrets', 'headers', 'authorization', 'token', 'apiToken', 'password', 'body', 'signature', 'cookie'];
const REDACTED = [...SENSITIVE, ...SENSITIVE.map((key) => `*.${key}`)];

/** `text` with every URL in it cut to its scheme and host (maskUrl); punctuation after a URL (`).,;`) stays. */
export function scrubUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*?)([.,;:!?)\]}]*)(?=[\s"'<>`]|$)/gi, (_match, url: string, tail: string) => maskUrl(url) + tail);
}

/** A field's value with every URL in its strings masked, however deep (an error's message and stack too). */
function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubUrls(value);
  if (depth > 5 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1));
  if (value instanceof Error) {
    // a copy of the same class (pino names its type), its message, stack, cause and fields masked
    const copy = Object.assign(Object.create(Object.getPrototypeOf(value) as object) as Error, scrubValue({ ...value }, depth + 1));
    copy.message = scrubUrls(value.message);
    if (value.stack) copy.stack = scrubUrls(value.stack);
    if (value.cause !== undefined) copy.cause = scrubValue(value.cause, depth + 1);
    return copy;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = key === 'url' && typeof v === 'string' ? maskUrl(v) : scrubValue(v, depth + 1);
  return out;
}

const scrubFields = (fields: Record<string, unknown>): Record<string, unknown> => scrubValue(fields, 0) as Record<string, unknown>;

interface Settings {
  level: LogLevel;
  format: LogFormat;
  /** set by redirectLogs(): every line, as JSON text, goes here instead of stdout */
  sink?: (line: string) => void;
}

function isJson(settings: Settings): boolean {
  return Boolean(settings.sink) || settings.format === 'json' || (settings.format === 'auto' && !process.stdout.isTTY);
}

function build(settings: Settings): Logger {
  const options: pino.LoggerOptions = {
    level: settings.level,
    base: undefined,
    redact: { paths: REDACTED, censor: '***' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // JSON lines name their level ("info"), as log tools expect; pino-pretty reads pino's numbers
    formatters: { ...(isJson(settings) ? { level: (label: string) => ({ level: label }) } : {}), log: scrubFields },
    hooks: {
      logMethod(args, method) {
        // (fields, message): the message may quote an error that holds a URL
        if (typeof args[1] === 'string') args[1] = scrubUrls(args[1]);
        else if (typeof args[0] === 'string') args[0] = scrubUrls(args[0]);
        return method.apply(this, args);
      },
    },
  };
  if (settings.sink) {
    const sink = settings.sink;
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) sink(line);
        done();
      },
    });
    return pino(options, stream);
  }
  if (isJson(settings)) return pino(options, pino.destination({ dest: 1, sync: true }));
  return pino(
    options,
    pretty({ colorize: Boolean(process.stdout.isTTY), sync: true, singleLine: true, errorLikeObjectKeys: ['err'], ignore: 'component', messageFormat: '[{component}] {msg}', translateTime: 'HH:MM:ss.l' }),
  );
}

const fromEnv = (): Settings => ({
  level: (['debug', 'info', 'warn', 'error'] as const).find((l) => l === process.env.LOG_LEVEL) ?? 'info',
  format: (['auto', 'json', 'pretty'] as const).find((f) => f === process.env.LOG_FORMAT) ?? 'auto',
});

let settings: Settings = fromEnv();
let root = build(settings);
let generation = 0;

function rebuild(next: Settings): void {
  settings = next;
  root = build(settings);
  generation++;
}

/** Sets the level and format of every logger (boot calls it with the parsed environment); answers the previous ones. */
export function configureLogging(options: { level: LogLevel; format: LogFormat }): { level: LogLevel; format: LogFormat } {
  const previous = { level: settings.level, format: settings.format };
  rebuild({ ...settings, ...options });
  return previous;
}

/**
 * Sends every log line, as the JSON text it would be, to `sink` instead of stdout (undefined: stdout
 * again). For a program that embeds the service and shows its own output (npm run demo) and for tests.
 */
export function redirectLogs(sink: ((line: string) => void) | undefined): void {
  rebuild({ ...settings, sink });
}

/** True when log lines are JSON (not a terminal, LOG_FORMAT=json, or redirected). */
export const logsAreJson = (): boolean => isJson(settings);

type LogFn = (fields: Record<string, unknown>, message: string) => void;
export interface ComponentLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * A logger whose lines carry `component`; it follows configureLogging() made after it was created.
 * `lifecycle`: lines about the process's own life, one each per start or stop (starting, waiting for a
 * dependency, ready, shutting down): written at info even when LOG_LEVEL is warn or error, as they
 * were before the service had levels, so an operator (and a script waiting for "ready") always sees them.
 */
export function logger(component: string, options: { lifecycle?: boolean } = {}): ComponentLogger {
  let made: { generation: number; child: Logger } | undefined;
  const current = () => {
    if (!made || made.generation !== generation) {
      const child = root.child({ component });
      if (options.lifecycle && LEVELS.indexOf(settings.level) > LEVELS.indexOf('info')) child.level = 'info';
      made = { generation, child };
    }
    return made.child;
  };
  return {
    debug: (fields, message) => current().debug(fields, message),
    info: (fields, message) => current().info(fields, message),
    warn: (fields, message) => current().warn(fields, message),
    error: (fields, message) => current().error(fields, message),
  };
}

/** The fields of an error worth a log line: its type, code and message (never a request's body). */
export function errorFields(err: unknown): Record<string, unknown> {
  const e = err as { name?: string; code?: unknown; message?: string; stack?: string };
  return { errorType: e?.name ?? typeof err, ...(e?.code === undefined ? {} : { errorCode: String(e.code) }), error: e?.message ?? String(err), ...(e?.stack ? { stack: e.stack } : {}) };
}

/**
 * Lines for a person starting the service (the API URL, the token, the Temporal UI): plain text in a
 * terminal, where a timestamp and a level in front of each would only make them harder to read; log
 * lines with the same message (and `fields`) when the output is JSON.
 */
export function printBanner(component: string, lines: string[], fields: Record<string, unknown> = {}): void {
  if (!isJson(settings)) {
    process.stdout.write(lines.map((line) => (line ? `[${component}] ${line}` : '')).join('\n') + '\n');
    return;
  }
  const log = logger(component, { lifecycle: true });
  for (const line of lines) if (line) log.info(fields, line);
}

const TEMPORAL_LEVELS: Record<TemporalLogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };

/**
 * The Temporal SDK's logger (Runtime.install({ logger })): its lines, and the native core's when they
 * are forwarded, become pino lines of component "temporal" at or above `minLevel`. An error in their
 * metadata shows its type and message. `expectedFailures`: ApplicationFailure types our own code
 * logs already (a webhook attempt that failed has its own line): the SDK's "Activity failed" warning
 * about one of them is debug.
 */
export function temporalLogger(minLevel: TemporalLogLevel, options: { expectedFailures?: string[] } = {}): TemporalLogger {
  const log = logger('temporal');
  const expected = new Set(options.expectedFailures ?? []);
  const write = (given: TemporalLogLevel, message: string, meta?: LogMetadata) => {
    const failureType = (meta?.error as { type?: unknown } | undefined)?.type;
    const level = given === 'WARN' && typeof failureType === 'string' && expected.has(failureType) ? 'DEBUG' : given;
    if (TEMPORAL_LEVELS[level] < TEMPORAL_LEVELS[minLevel]) return;
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(meta ?? {})) {
      fields[key] = value instanceof Error ? { name: value.name, message: value.message, ...((value as { type?: string }).type ? { type: (value as { type?: string }).type } : {}) } : value;
    }
    const method = level === 'ERROR' ? log.error : level === 'WARN' ? log.warn : level === 'INFO' ? log.info : log.debug;
    method(fields, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}
