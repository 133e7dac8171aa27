import type { AlertConfig, AuditChange, NoiseSettings } from './schemas';
import type { JsonValue } from './templates';

/**
 * What the audit log records of a config change: the non-secret fields that changed. The webhook
 * URL can carry a credential in its path, query or user info, header values are often API keys, a
 * payload template can hold a static token, and secrets are secrets: the log shows the URL's scheme
 * and host only, and the others as MASK (a template that is null, the default payload, stays null).
 */
export const MASK = '***';

/** The parts of a config the audit log compares. */
export type AuditedConfig = Pick<AlertConfig, 'workflowId' | 'name' | 'enabled' | 'disabledReason' | 'conditions' | 'webhook' | 'payload' | 'retry'> & Partial<NoiseSettings>;

/**
 * `https://hooks.example.com/***`: where a URL goes, its scheme and host, without the path, query,
 * fragment or user info that may hold a credential (a Slack, Discord or Teams webhook's path is its
 * secret). The one rule for URLs in the audit log and in log lines (lib/log.ts); `/***` says that
 * something was cut. Not a URL: `***`.
 */
export function maskUrl(url: string): string {
  // the authority ends where a WHATWG parser ends it: at / \ ? or #
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/\\?#]*)([\s\S]*)$/i.exec(url);
  if (!match) return MASK;
  const at = match[2].lastIndexOf('@');
  const cut = at >= 0 || !/^\/?$/.test(match[3]);
  return `${match[1].toLowerCase()}://${match[2].slice(at + 1)}${cut ? `/${MASK}` : ''}`;
}

/** The audited fields of a config, flattened to `field -> value`, secrets masked. */
function auditedFields(config: AuditedConfig): Map<string, JsonValue> {
  const fields = new Map<string, JsonValue>([
    ['workflowId', config.workflowId],
    ['name', config.name],
    ['enabled', config.enabled],
    ['disabledReason', config.disabledReason],
    ['conditions', config.conditions as JsonValue],
    ['webhook.url', maskUrl(config.webhook.url)],
    ['webhook.timeoutMs', config.webhook.timeoutMs],
    ['payload.template', config.payload.template === null ? null : MASK],
  ]);
  // the preset's name is no secret (its credentials are in the template and headers, masked)
  if (config.payload.preset) fields.set('payload.preset', config.payload.preset);
  for (const name of Object.keys(config.webhook.headers).sort()) fields.set(`webhook.headers.${name}`, MASK);
  for (const [name, value] of Object.entries(config.retry)) fields.set(`retry.${name}`, value);
  // the noise settings (docs/noise-control.md), as they are: none is a secret
  for (const name of ['grouping', 'recovery', 'throttle', 'dedup', 'repeatIntervalSeconds'] as const) {
    if (config[name] !== undefined) fields.set(name, config[name] as JsonValue);
  }
  return fields;
}

/**
 * The changes from `before` to `after` (undefined: the config did not exist, or no longer does).
 * A URL, header value or payload template that changed is listed even when its masked form did not:
 * the log says that it changed, not what it was.
 */
export function configChanges(before: AuditedConfig | undefined, after: AuditedConfig | undefined): AuditChange[] {
  const from = before ? auditedFields(before) : new Map<string, JsonValue>();
  const to = after ? auditedFields(after) : new Map<string, JsonValue>();
  const changes: AuditChange[] = [];
  for (const field of new Set([...from.keys(), ...to.keys()])) {
    const a = from.get(field);
    const b = to.get(field);
    const changed = JSON.stringify(a) !== JSON.stringify(b) || (before && after && clearValueChanged(field, before, after));
    if (!changed) continue;
    changes.push({ field, ...(from.has(field) ? { from: a } : {}), ...(to.has(field) ? { to: b } : {}) });
  }
  return changes;
}

function clearValueChanged(field: string, before: AuditedConfig, after: AuditedConfig): boolean {
  if (field === 'webhook.url') return before.webhook.url !== after.webhook.url;
  if (field === 'payload.template') return JSON.stringify(before.payload.template) !== JSON.stringify(after.payload.template);
  if (field.startsWith('webhook.headers.')) {
    const name = field.slice('webhook.headers.'.length);
    return before.webhook.headers[name] !== after.webhook.headers[name];
  }
  return false;
}

/** The entry for a secret that was set or replaced: never the secret. */
export const secretChange = (replaced: boolean): AuditChange => (replaced ? { field: 'secret', from: MASK, to: MASK } : { field: 'secret', to: MASK });
