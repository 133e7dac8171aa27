import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * The service's structured log: pino, one JSON object per line when the output is not a terminal
 * (or LOG_FORMAT=json), readable lines in a terminal. Every line names its component; delivery lines
 * carry deliveryId, configId, projectId, runId, attempt, outcome and durationMs. Secrets, header
 * values and URLs' query strings are never logged: pass a URL through safeUrl(), and the redaction
 * below masks the field names that hold secrets whatever a caller passes.
 */

export type LogFormat = 'auto' | 'json' | 'pretty';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Fields that may hold a secret or a credential, wherever they appear in a log line's object. */
const REDACTED = ['secret', 'secrets', 'headers', 'authorization', 'token', 'password', '*.secret', '*.secrets', '*.headers', '*.authorization', '*.token', '*.password'];

function build(level: LogLevel, format: LogFormat): Logger {
  const json = format === 'json' || (format === 'auto' && !process.stdout.isTTY);
  const options = { level, base: undefined, redact: { paths: REDACTED, censor: '***' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (json) return pino(options, pino.destination({ dest: 1, sync: true }));
  return pino(options, pretty({ colorize: Boolean(process.stdout.isTTY), sync: true, ignore: 'component', messageFormat: '[{component}] {msg}', translateTime: 'HH:MM:ss.l' }));
}

let root = build((process.env.LOG_LEVEL as LogLevel | undefined) ?? 'info', (process.env.LOG_FORMAT as LogFormat | undefined) ?? 'auto');
let generation = 0;

/** Sets the level and format of every logger (boot calls it with the parsed environment). */
export function configureLogging(options: { level: LogLevel; format: LogFormat }): void {
  root = build(options.level, options.format);
  generation++;
}

type LogFn = (fields: Record<string, unknown>, message: string) => void;
export interface ComponentLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** A logger whose lines carry `component`; it follows configureLogging() made after it was created. */
export function logger(component: string): ComponentLogger {
  let made: { generation: number; child: Logger } | undefined;
  const current = () => {
    if (!made || made.generation !== generation) made = { generation, child: root.child({ component }) };
    return made.child;
  };
  return {
    debug: (fields, message) => current().debug(fields, message),
    info: (fields, message) => current().info(fields, message),
    warn: (fields, message) => current().warn(fields, message),
    error: (fields, message) => current().error(fields, message),
  };
}

/** A URL as a log line may show it: scheme, host and path; no user info, query string or fragment. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
