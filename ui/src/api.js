// The API client of the web UI: the token lives in sessionStorage (this tab's session only).
const KEY = 'meshhook-alerts-token';

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? 'error';
    /** [{ path: 'config.webhook.url', message }] */
    this.issues = error?.details?.issues ?? [];
  }
}

export async function api(method, path, body, token = session.token) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) throw new ApiError(res.status, data?.error ?? { message: text.slice(0, 200) || `HTTP ${res.status}` });
  return data;
}

export const enc = encodeURIComponent;

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Issues whose path is the field or inside it. */
export function issuesAt(issues, path) {
  return (issues ?? []).filter((i) => i.path === path || i.path.startsWith(path + '.') || i.path.startsWith(path + '['));
}

export function ms(n) {
  if (n == null) return '';
  if (n < 1000) return `${Math.round(n)} ms`;
  const s = n / 1000;
  if (s < 60) return `${+s.toFixed(1)} s`;
  const m = s / 60;
  if (m < 60) return `${+m.toFixed(1)} min`;
  const h = m / 60;
  if (h < 48) return `${+h.toFixed(1)} h`;
  return `${+(h / 24).toFixed(1)} days`;
}

const EGRESS_PREFIX = 'refused by the egress policy: ';

/**
 * The reason of an egress-policy refusal (lib/egress.ts), from an attempt's error or a save's field
 * message ("refused by the egress policy: 127.0.0.1 is a loopback address (127.0.0.0/8)"), or null.
 */
export function egressRefusal(message) {
  if (typeof message !== 'string') return null;
  const at = message.indexOf(EGRESS_PREFIX);
  return at === -1 ? null : message.slice(at + EGRESS_PREFIX.length);
}

/** The host of a webhook URL (template), as ALERTS_EGRESS_ALLOW would name it, or null. */
export function webhookHost(url) {
  try {
    // the host is literal text; a template in the path or query does not matter here
    const host = new URL(String(url).replace(/\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g, 'x')).hostname;
    return host.replace(/^\[(.*)\]$/, '$1') || null;
  } catch {
    return null;
  }
}

/**
 * A config's health badge, from its `enabled`, `disabledReason` and `health` (the overview's answer):
 * `healthy`, `failing (n)` (n failed deliveries in a row), or `disabled` (with the held count).
 */
export function healthBadge(config) {
  const held = config.health?.heldCount ?? 0;
  if (!config.enabled) return { kind: 'disabled', label: held ? `disabled · ${held} held` : 'disabled' };
  const failures = config.health?.consecutiveFailures ?? 0;
  if (failures > 0) return { kind: 'failing', label: `failing (${failures})` };
  return { kind: 'healthy', label: 'healthy' };
}

/** "14:00" for the hour starting at an ISO time, in the browser's time zone. */
export function hourLabel(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
}

/** 0.753 → "75 %"; null → "–" */
export function percent(rate) {
  return rate == null ? '–' : `${Math.round(rate * 100)} %`;
}
