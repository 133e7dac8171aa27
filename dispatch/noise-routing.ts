import { logger } from '../lib/log';
import { groupKey, type NoiseAlertItem } from '../lib/noise';
import { buildTemplateContext } from '../lib/render';
import { TemplateError } from '../lib/templates';
import type { AlertConfig, NoiseSettings } from '../lib/schemas';
import { activeSilence, silenceNote } from '../lib/silences';
import { renderAlertSandboxed, starvedTooOften } from '../runtime/template-sandbox';
import type { Queryable } from '../store/db';
import { silencesFor } from '../store/silences';

/**
 * What an alert of a noise config carries into its pipeline (docs/noise-control.md), built where the
 * alert is matched or a delay watch fires: the alert's group key, its rendered dedup key, and the
 * silence in force at its time. Shared by dispatch (immediate alerts) and the delivery activities
 * (fired delay watches).
 */

const log = logger('noise');

/** A config as noise routing reads it. */
export interface NoiseRoutedConfig {
  id: string;
  name: string;
  noise: NoiseSettings;
}

// renderAlert renders a URL first: a fixed one that is never dialled
const DEDUP_RENDERING_URL = 'http://dedup-key.invalid/';

/**
 * The config's dedup.key rendered over the alert's template context, in the sandboxed renderer the
 * deliveries use (a key is a user's template). A key that fails to render is its own text: the
 * alerts of that config are then deduplicated all together, which a warning says.
 */
async function renderDedupKey(key: string, config: NoiseRoutedConfig, item: Pick<NoiseAlertItem, 'event' | 'condition' | 'deliveryId'>, nowMs: number): Promise<string> {
  const renderable: Pick<AlertConfig, 'webhook' | 'payload'> = { webhook: { url: DEDUP_RENDERING_URL, headers: {}, timeoutMs: 1000 }, payload: { template: key } };
  try {
    const rendered = await renderAlertSandboxed(renderable, buildTemplateContext(item.event, config, item.condition, item.deliveryId, nowMs));
    // the body is the key rendered as a JSON template: a string, or (an exact `{{ x }}`) any JSON value
    const value: unknown = JSON.parse(rendered.body);
    return typeof value === 'string' ? value : JSON.stringify(value);
  } catch (err) {
    // only the key's own fault falls back to its text: a renderer that is down is retried (503, a retried activity),
    // not taken for a key that puts every alert of the window under one
    const failure = err instanceof TemplateError ? err : starvedTooOften(err);
    if (!failure) throw err;
    log.warn({ configId: config.id, deliveryId: item.deliveryId, error: failure.message }, `dedup.key of config ${config.id} did not render; its text is the key`);
    return key;
  }
}

/** One alert of a noise config as its pipeline takes it in. */
export async function noiseAlertItem(
  config: NoiseRoutedConfig,
  alert: Pick<NoiseAlertItem, 'deliveryId' | 'condition' | 'event' | 'receivedAt' | 'silencedBy' | 'silenceNote' | 'watch'>,
  nowMs: number,
): Promise<NoiseAlertItem> {
  const { grouping, dedup } = config.noise;
  return {
    kind: 'alert',
    ...alert,
    groupKey: grouping ? groupKey(grouping.by, alert.event, alert.condition) : '',
    dedupKey: dedup ? await renderDedupKey(dedup.key, config, alert, nowMs) : null,
    settings: config.noise,
  };
}

/** The silence in force for an alert: its id, and the note of the alert's log row. */
export interface SilenceInForce {
  id: string;
  note: string;
}

/**
 * The silences of a MeshHook workflow and of its configs, read in one query; the function answers
 * which of them is in force for a config at a time.
 */
export async function loadSilences(db: Queryable, projectId: string, workflowId: string): Promise<(configId: string, atMs: number) => SilenceInForce | undefined> {
  const silences = await silencesFor(db, projectId, workflowId);
  return (configId, atMs) => {
    const silence = activeSilence(silences, { configId, workflowId }, atMs);
    return silence && { id: silence.id, note: silenceNote(silence, atMs) };
  };
}
