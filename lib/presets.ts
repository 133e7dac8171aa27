import type { JsonValue } from './templates';

/**
 * Built-in payload (and URL) presets: the JSON body a receiver's documentation asks for, written
 * as an alert template over the one template context (lib/render.ts), so that every string in them
 * is Liquid like a user's own. A config picks one with `payload.preset`; its `payload.template`, when
 * given, is merged over the preset's (mergeTemplate), so a preset stays customisable field by field.
 * docs/presets.md describes each one with a sample body.
 *
 * The limits each receiver documents are kept by truncating what can grow (names, error messages)
 * with Liquid's `truncate`, which counts UTF-16 code units: never fewer than the characters the
 * receivers count. Comments give each field's documented limit.
 */

export const PRESET_NAMES = ['generic', 'slack', 'discord', 'teams', 'pagerduty', 'opsgenie'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface Preset {
  /** one line for the OpenAPI description and the web UI */
  label: string;
  /** the receiver's fixed API URL; absent where the URL is the user's own (an incoming webhook) */
  url?: string;
  template: JsonValue;
  /**
   * A receiver that closes an alert at another endpoint than it opens one (Opsgenie): a recovery
   * (condition `recovered`) goes to the config's URL followed by `path` (Liquid, each value
   * URL-encoded as in webhook.url), with this body instead of the template (and the user's).
   */
  recovery?: { path: string; template: JsonValue };
}

// ---------------------------------------------------------------- phrases every preset shares

/** what happened, as words after the workflow's name (lib/render.ts's CONDITION_TEXT, plus `recovered`, which a later issue sends) */
const WHAT =
  '{% case condition %}{% when "failure" %}failed{% when "success" %}succeeded' +
  '{% when "manual_intervention" %}is waiting for manual intervention{% when "canceled" %}was canceled' +
  '{% when "delay" %}is running longer than expected{% when "recovered" %}recovered{% else %}test alert{% endcase %}';

const WHO = 'workflow.name | default: workflow.id';

/** a digest's runs, as words after their count (lib/render.ts's GROUP_TEXT) */
const RUNS = '{% if group.count == 1 %}run{% else %}runs{% endif %}';
const GROUP_WHAT =
  `{% case group.condition %}{% when "failure" %}failed ${RUNS}{% when "success" %}succeeded ${RUNS}` +
  `{% when "manual_intervention" %}${RUNS} waiting for manual intervention{% when "canceled" %}canceled ${RUNS}` +
  `{% when "delay" %}${RUNS} running longer than expected{% else %}{{ group.condition }} ${RUNS}{% endcase %}`;

/** "12 failed runs between … and …": a digest (the template context's `group`) */
const DIGEST = `{{ group.count }} ${GROUP_WHAT} between {{ group.firstAt }} and {{ group.lastAt }}`;

/** "5m 3s": how long a recovered workflow was failing (lib/render.ts's durationText) */
const FAILING_FOR =
  '{% assign s = recovery.failingForMs | divided_by: 1000.0 | round %}' +
  '{% if s < 60 %}{{ s }}s{% elsif s < 3600 %}{{ s | divided_by: 60 | floor }}m {{ s | modulo: 60 }}s' +
  '{% elsif s < 86400 %}{{ s | divided_by: 3600 | floor }}h {{ s | modulo: 3600 | divided_by: 60 | floor }}m' +
  '{% else %}{{ s | divided_by: 86400 | floor }}d {{ s | modulo: 86400 | divided_by: 3600 | floor }}h{% endif %}';

/** "recovered after failing for 5m 3s (12 failures)": a recovery (the template context's `recovery`) */
const RECOVERY = `recovered after failing for ${FAILING_FOR} ({{ recovery.failures }} {% if recovery.failures == 1 %}failure{% else %}failures{% endif %})`;

/** " (held back since …: 3 throttled, 1 silenced)" when the noise pipeline held alerts back (lib/render.ts's heldBackText), else nothing */
const HELD_BACK =
  '{% if noise %}{% assign held = "" %}' +
  '{% if noise.throttled > 0 %}{% assign held = held | append: ", " | append: noise.throttled | append: " throttled" %}{% endif %}' +
  '{% if noise.silenced > 0 %}{% assign held = held | append: ", " | append: noise.silenced | append: " silenced" %}{% endif %}' +
  '{% if noise.deduplicated > 0 %}{% assign held = held | append: ", " | append: noise.deduplicated | append: " deduplicated" %}{% endif %}' +
  '{% if noise.repeatSuppressed > 0 %}{% assign held = held | append: ", " | append: noise.repeatSuppressed | append: " repeats not sent" %}{% endif %}' +
  '{% if held != "" %} (held back since {{ noise.since }}: {{ held | remove_first: ", " }}){% endif %}{% endif %}';
/** the name, or the id when there is none (an empty name stays: the default payload's rule) */
const WHO_OR_ID = '{% if workflow.name == nil %}{{ workflow.id }}{% else %}{{ workflow.name }}{% endif %}';

/** a one-line title of at most 125 characters (Opsgenie's message: 130; Slack's header: 150; Discord's title: 256) */
const TITLE =
  `{% if condition == "test" %}Test alert: {{ config.name | truncate: 90 }}` +
  // a digest: "Orders sync: 12 failed runs" (at most 80 + 2 + 6 + 37)
  `{% elsif group %}{{ ${WHO} | truncate: 80 }}: {{ group.count }} ${GROUP_WHAT}` +
  `{% else %}{{ ${WHO} | truncate: 90 }} ${WHAT}{% endif %}`;

const isTest = (then: string, otherwise: string) => `{% if condition == "test" %}${then}{% else %}${otherwise}{% endif %}`;

/** "Run `run_1` of Orders sync failed after 2.5 s." (or a test alert's sentence); `bold` and `code` are the receiver's markup, `escape` a filter chain its text needs */
const sentence = (bold: (s: string) => string, code: (s: string) => string, escape = '') =>
  isTest(
    `This is a test alert from MeshHook Alerts for the config ${bold(`{{ config.name ${escape}| truncate: 200 }}`)}.`,
    // a digest of grouped runs, a recovery, or one run
    `{% if group %}${bold(`{{ ${WHO} ${escape}| truncate: 150 }}`)}: ${DIGEST}{% if group.more > 0 %} ({{ group.events.size }} listed){% endif %}` +
      `{% elsif recovery %}${bold(`{{ ${WHO} ${escape}| truncate: 150 }}`)} ${RECOVERY}` +
      `{% else %}Run ${code('{{ run.id }}')} of ${bold(`{{ ${WHO} ${escape}| truncate: 150 }}`)} ${WHAT}` +
      // a finished run took its time; a delayed or paused one started that long ago
      '{% if run.durationMs %}{% assign seconds = run.durationMs | divided_by: 1000.0 | round: 1 %}' +
      '{% case condition %}{% when "failure", "success", "canceled" %} after {{ seconds }} s{% else %} (started {{ seconds }} s ago){% endcase %}{% endif %}{% endif %}' +
      `${HELD_BACK}.`,
  );

/** the dedup key / alias of an incident: one per config and workflow, so a recovery resolves what a failure opened; a test alert has its own */
const INCIDENT_KEY = 'meshhook/{{ workflow.id }}/{{ config.id }}{% if condition == "test" %}/test{% endif %}';

/** Slack's mrkdwn needs &, < and > escaped (and nothing else); escaped before truncating, so the limit holds whatever the text holds */
const SLACK_ESCAPE = '| replace: "&", "&amp;" | replace: "<", "&lt;" | replace: ">", "&gt;" ';

// ---------------------------------------------------------------- the presets

/** lib/render.ts's defaultPayload as a template: the same body, now customisable. */
const generic: JsonValue = {
  type: 'alert.{{ condition }}{% if group %}.digest{% endif %}',
  text: isTest(
    `Test alert for "{{ config.name }}" (${WHO_OR_ID})`,
    `{% if group %}${WHO_OR_ID}: ${DIGEST}{% elsif recovery %}${WHO_OR_ID} ${RECOVERY}` +
      `{% else %}${WHO_OR_ID} run {{ run.id }} ${WHAT}{% if error.message != blank %}: {{ error.message }}{% endif %}{% endif %}${HELD_BACK}`,
  ),
  condition: '{{ condition }}',
  workflow: '{{ workflow }}',
  run: '{{ run }}',
  error: '{{ error }}',
  event: { id: '{{ event.id }}', type: '{{ event.type }}', occurredAt: '{{ event.occurredAt }}' },
  data: '{{ data }}',
  config: '{{ config }}',
  delivery: '{{ delivery }}',
};

/** Slack incoming webhook: `text` (the notification's fallback) and Block Kit `blocks`. */
const slack: JsonValue = {
  text: `${TITLE}{% if error.message != blank %}: {{ error.message ${SLACK_ESCAPE}| truncate: 1000 }}{% endif %}`,
  blocks: [
    // header: plain_text, at most 150 characters
    { type: 'header', text: { type: 'plain_text', text: TITLE, emoji: true } },
    {
      // section text: mrkdwn, at most 3000 characters (this one: at most about 2550)
      type: 'section',
      text: {
        type: 'mrkdwn',
        text:
          sentence((s) => `*${s}*`, (s) => `\`${s}\``, SLACK_ESCAPE) +
          `{% if error.message != blank %}\n*Error*{% if error.step != blank %} in step \`{{ error.step ${SLACK_ESCAPE}| truncate: 100 }}\`{% endif %}:\n` +
          `\`\`\`{{ error.message ${SLACK_ESCAPE}| truncate: 2000 }}\`\`\`{% endif %}`,
      },
    },
    {
      type: 'context',
      elements: [{ type: 'mrkdwn', text: `Workflow \`{{ workflow.id }}\` · config {{ config.name ${SLACK_ESCAPE}| truncate: 200 }} · delivery \`{{ delivery.id }}\`` }],
    },
  ],
};

/** Discord's embed colours: decimal integers (red, green, amber, blurple). */
const DISCORD_COLOR =
  // each condition name becomes its colour's digits, and `plus: 0` makes the digits a number (an exact `{{ }}` keeps its JSON type);
  // a condition not named here gives null, which Discord takes as no colour
  '{{ condition | replace: "manual_intervention", "16098851" | replace: "failure", "15548997" | replace: "success", "5763719"' +
  ' | replace: "canceled", "9807270" | replace: "delay", "16098851" | replace: "recovered", "5763719" | replace: "test", "5793266" | plus: 0 }}';

/** Discord webhook: one embed (title ≤ 256, description ≤ 4096, ≤ 25 fields of name ≤ 256 / value ≤ 1024, footer ≤ 2048, ≤ 6000 in all). */
const discord: JsonValue = {
  username: 'MeshHook Alerts',
  // a run's error text must not ping @everyone or a role
  allowed_mentions: { parse: [] },
  embeds: [
    {
      title: TITLE,
      description:
        sentence((s) => `**${s}**`, (s) => `\`${s}\``) +
        '{% if error.message != blank %}\n\n**Error**{% if error.step != blank %} in step `{{ error.step | truncate: 100 }}`{% endif %}:\n```\n{{ error.message | truncate: 3000 }}\n```{% endif %}',
      color: DISCORD_COLOR,
      fields: [
        { name: 'Workflow', value: '`{{ workflow.id }}`', inline: true },
        { name: 'Run', value: '`{{ run.id }}`', inline: true },
        { name: 'Condition', value: '{{ condition }}', inline: true },
      ],
      footer: { text: 'MeshHook Alerts · {{ config.name | truncate: 200 }} · {{ delivery.id }}' },
      timestamp: '{{ event.occurredAt }}',
    },
  ],
};

/** Microsoft Teams (a Workflows "when a Teams webhook request is received" flow, or an incoming webhook): a message with one Adaptive Card. */
const teams: JsonValue = {
  type: 'message',
  attachments: [
    {
      contentType: 'application/vnd.microsoft.card.adaptive',
      contentUrl: null,
      content: {
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        type: 'AdaptiveCard',
        version: '1.4',
        msteams: { width: 'Full' },
        body: [
          {
            type: 'TextBlock',
            text: TITLE,
            size: 'Large',
            weight: 'Bolder',
            wrap: true,
            color: '{% case condition %}{% when "failure" %}Attention{% when "success", "recovered" %}Good{% when "delay", "manual_intervention" %}Warning{% else %}Accent{% endcase %}',
          },
          { type: 'TextBlock', text: sentence((s) => `**${s}**`, (s) => s), wrap: true },
          {
            type: 'FactSet',
            facts: [
              { title: 'Workflow', value: '{{ workflow.id }}' },
              { title: 'Run', value: '{{ run.id }}' },
              { title: 'Condition', value: '{{ condition }}' },
              { title: 'Step', value: '{{ error.step | default: "-" | truncate: 200 }}' },
            ],
          },
          {
            type: 'TextBlock',
            text: '{% if error.message != blank %}{{ error.message | truncate: 3000 }}{% else %}No error reported.{% endif %}',
            wrap: true,
            fontType: 'Monospace',
          },
          { type: 'TextBlock', text: 'Config {{ config.name | truncate: 200 }} · delivery {{ delivery.id }}', wrap: true, isSubtle: true, size: 'Small' },
        ],
      },
    },
  ],
};

/**
 * PagerDuty Events API v2 (POST /v2/enqueue). `routing_key` (the integration key, 32 characters) is
 * the user's: it goes into payload.template, which is sealed at rest. `event_action` is `resolve`
 * for a recovery (condition `recovered`), which PagerDuty matches to the open incident by dedup_key.
 */
const pagerduty: JsonValue = {
  event_action: '{% if condition == "recovered" %}resolve{% else %}trigger{% endif %}',
  // at most 255 characters: workflow ids are at most 200, config ids 20
  dedup_key: INCIDENT_KEY,
  client: 'MeshHook Alerts',
  payload: {
    // at most 1024 characters
    summary: `${TITLE}{% if error.message != blank %}: {{ error.message | truncate: 800 }}{% endif %}`,
    source: '{{ workflow.id }}',
    severity: '{% case condition %}{% when "failure" %}error{% when "delay", "manual_intervention" %}warning{% else %}info{% endcase %}',
    timestamp: '{{ event.occurredAt }}',
    component: '{{ error.step | default: workflow.id }}',
    group: `{{ ${WHO} }}`,
    class: '{{ condition }}',
    custom_details: {
      workflow: '{{ workflow }}',
      run: '{{ run }}',
      error: '{{ error }}',
      data: '{{ data }}',
      config: '{{ config }}',
      delivery: '{{ delivery.id }}',
    },
  },
};

/**
 * Opsgenie Create Alert (POST /v2/alerts); the API key goes in the header `Authorization: GenieKey
 * <key>` (webhook.headers, sealed at rest). `details` values must be strings.
 */
const opsgenie: JsonValue = {
  // at most 130 characters
  message: TITLE,
  // at most 512
  alias: INCIDENT_KEY,
  // at most 15000
  description:
    sentence((s) => s, (s) => s) +
    '{% if error.message != blank %}\n\nError{% if error.step != blank %} in step {{ error.step | truncate: 200 }}{% endif %}:\n{{ error.message | truncate: 10000 }}{% endif %}' +
    '\n\nConfig {{ config.name | truncate: 200 }}, delivery {{ delivery.id }}',
  // at most 20 tags of 50 characters
  tags: ['meshhook', '{{ condition }}'],
  // strings only, 8000 characters in all
  details: {
    workflowId: '{{ workflow.id }}',
    runId: '{{ run.id }}',
    eventId: '{{ event.id }}',
    condition: '{{ condition }}',
    errorStep: '{{ error.step | default: "" | truncate: 200 }}',
    configId: '{{ config.id }}',
    deliveryId: '{{ delivery.id }}',
  },
  // at most 512
  entity: `{{ ${WHO} | truncate: 200 }}`,
  // at most 100
  source: 'MeshHook Alerts',
  priority: '{% case condition %}{% when "failure" %}P2{% when "delay", "manual_intervention" %}P3{% when "canceled" %}P4{% else %}P5{% endcase %}',
};

/**
 * Opsgenie Close Alert (POST /v2/alerts/{alias}/close?identifierType=alias): a recovery closes the
 * alert its incident's alerts opened (the same alias). `note` at most 25000, `user` and `source` 100.
 */
const opsgenieClose: NonNullable<Preset['recovery']> = {
  // the alias, each value URL-encoded (as in webhook.url), its slashes written encoded
  path: '/meshhook%2F{{ workflow.id }}%2F{{ config.id }}/close?identifierType=alias',
  template: {
    user: 'MeshHook Alerts',
    source: 'MeshHook Alerts',
    note: `${sentence((s) => s, (s) => s)}\n\nConfig {{ config.name | truncate: 200 }}, delivery {{ delivery.id }}`,
  },
};

export const PRESETS: Record<PresetName, Preset> = {
  generic: { label: 'Generic JSON (the default payload)', template: generic },
  slack: { label: 'Slack incoming webhook (Block Kit)', template: slack },
  discord: { label: 'Discord webhook (embed)', template: discord },
  teams: { label: 'Microsoft Teams (Adaptive Card, Workflows or incoming webhook)', template: teams },
  pagerduty: { label: 'PagerDuty Events API v2', url: 'https://events.pagerduty.com/v2/enqueue', template: pagerduty },
  opsgenie: { label: 'Opsgenie Create Alert API', url: 'https://api.opsgenie.com/v2/alerts', template: opsgenie, recovery: opsgenieClose },
};

// ---------------------------------------------------------------- merging a user's template over a preset's

const isObject = (v: JsonValue | undefined): v is { [key: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `over` merged over `base`: two objects merge key by key (recursively); anything else in `over`
 * (a string, a number, null, an array) replaces what `base` has there.
 */
export function mergeTemplate(base: JsonValue, over: JsonValue): JsonValue {
  if (!isObject(base) || !isObject(over)) return over;
  const out: { [key: string]: JsonValue } = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = key in base ? mergeTemplate(base[key], value) : value;
  return out;
}

/**
 * The template an alert renders: the preset's with the user's merged over it; the user's alone
 * without a preset; null (lib/render.ts's default payload) with neither.
 */
export function effectiveTemplate(payload: { preset?: PresetName | null; template: unknown }): JsonValue | null {
  const own = (payload.template ?? null) as JsonValue | null;
  if (!payload.preset) return own;
  const preset = PRESETS[payload.preset].template;
  return own === null ? preset : mergeTemplate(preset, own);
}

/**
 * What an alert of `condition` sends: its template (effectiveTemplate), and a path to put after the
 * config's URL ('' for the URL itself); a preset's recovery request (Opsgenie's close) for a recovery.
 */
export function presetRequest(payload: { preset?: PresetName | null; template: unknown }, condition: string): { template: JsonValue | null; path: string } {
  const recovery = payload.preset ? PRESETS[payload.preset].recovery : undefined;
  if (condition === 'recovered' && recovery) return { template: recovery.template, path: recovery.path };
  return { template: effectiveTemplate(payload), path: '' };
}

/** `url` with `path` after its path (before a query string of its own, which follows the path's). */
export function urlWithPath(url: string, path: string): string {
  if (path === '') return url;
  const q = url.indexOf('?');
  const [base, query] = q === -1 ? [url, ''] : [url.slice(0, q), url.slice(q + 1)];
  const joined = base.replace(/\/+$/, '') + path;
  return query === '' ? joined : `${joined}${joined.includes('?') ? '&' : '?'}${query}`;
}

// ---------------------------------------------------------------- what a preset needs from the config

export interface PresetIssue {
  /** the field's path inside the config */
  path: (string | number)[];
  message: string;
}

const hasTemplate = (s: string) => /\{\{|\{%/.test(s);

/**
 * The credentials a preset's receiver needs, checked at save: PagerDuty's routing key in the
 * template, Opsgenie's API key in the Authorization header. A value that is a template is only
 * checked to be there (what it renders to is known at delivery).
 */
export function presetIssues(config: { webhook: { headers: Record<string, string> }; payload: { preset?: PresetName | null; template: unknown } }): PresetIssue[] {
  const { preset } = config.payload;
  if (preset === 'pagerduty') {
    const merged = effectiveTemplate(config.payload);
    const key = isObject(merged) ? merged.routing_key : undefined;
    const path = ['payload', 'template', 'routing_key'];
    if (typeof key !== 'string' || key.trim() === '') {
      return [{ path, message: 'the pagerduty preset needs payload.template.routing_key: the 32-character integration key of an Events API v2 integration' }];
    }
    if (!hasTemplate(key) && !/^[A-Za-z0-9]{32}$/.test(key)) return [{ path, message: `routing_key must be 32 letters and digits (PagerDuty's integration key), not ${key.length} characters` }];
  }
  if (preset === 'opsgenie') {
    const name = Object.keys(config.webhook.headers).find((n) => n.toLowerCase() === 'authorization');
    const value = name === undefined ? undefined : config.webhook.headers[name];
    if (value === undefined) return [{ path: ['webhook', 'headers', 'Authorization'], message: 'the opsgenie preset needs the header "Authorization: GenieKey <API key>" (an API integration\'s key)' }];
    if (!hasTemplate(value) && !/^GenieKey \S+$/.test(value)) return [{ path: ['webhook', 'headers', name!], message: 'the Authorization header of the opsgenie preset must read "GenieKey <API key>"' }];
  }
  return [];
}
