import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Stand-ins for the services the payload presets (lib/presets.ts) are written for, on 127.0.0.1:
 * each checks a request against the fields, types and limits its service documents, and answers as
 * that service does, so that a preset whose shape is wrong fails its delivery the way it would in
 * production (a 4xx is a permanent failure). The limits and answers:
 *
 * - Slack incoming webhooks (docs.slack.dev, Block Kit; "Improving error conditions for incoming
 *   webhooks"): `text` unless `blocks`; ≤ 50 blocks; header text plain_text ≤ 150; section text ≤ 3000
 *   or ≤ 10 fields ≤ 2000; context ≤ 10 elements. 200 `ok`; 400 `invalid_payload`, `no_text`, `invalid_blocks`.
 * - Discord Execute Webhook (discord.com/developers, Embed Limits): `content` ≤ 2000 or `embeds` ≤ 10;
 *   title ≤ 256, description ≤ 4096, ≤ 25 fields (name ≤ 256, value ≤ 1024, both non-empty), footer
 *   text ≤ 2048, author name ≤ 256, all of them ≤ 6000 together; color an integer; timestamp ISO 8601;
 *   username ≤ 80. 204; 400 `{ code: 50006, message: "Cannot send an empty message" }` or
 *   `{ code: 50035, message: "Invalid Form Body", errors }`.
 * - Microsoft Teams, a Workflows webhook posting an Adaptive Card (learn.microsoft.com, "Create
 *   and send messages"; adaptivecards.io): `type: "message"`, `attachments[]` with `contentType:
 *   application/vnd.microsoft.card.adaptive` and `content` `{ type: "AdaptiveCard", version, body[] }`,
 *   every element typed; messages ≤ 28 KB. 202; 400.
 * - PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert Event"): `routing_key` 32
 *   characters, `event_action` trigger|acknowledge|resolve, `dedup_key` ≤ 255 (needed to
 *   acknowledge or resolve); a trigger needs `payload.summary` ≤ 1024, `payload.source`,
 *   `payload.severity` critical|error|warning|info; `payload.timestamp` ISO 8601; ≤ 512 KB. 202
 *   `{ status: "success", message: "Event processed", dedup_key }`; 400 `{ status: "invalid event",
 *   message: "Event object is invalid", errors: [...] }`.
 * - Opsgenie Create Alert (docs.opsgenie.com, Alert API; "Response"): `Authorization: GenieKey <key>`
 *   (else 401); `message` ≤ 130 required, `alias` ≤ 512, `description` ≤ 15000, ≤ 20 `tags` ≤ 50,
 *   `details` string values ≤ 8000 in all, `entity` ≤ 512, `source` ≤ 100, `priority` P1–P5, `user`
 *   ≤ 100, `note` ≤ 25000. 202 `{ result: "Request will be processed", took, requestId }`; 422 for a
 *   body it cannot process (the service's status for semantic errors), 400 for one that is not JSON.
 * - Opsgenie Close Alert (same API, "Close Alert"): POST /v2/alerts/{identifier}/close with
 *   `identifierType=alias` for an alias (the identifier URL-encoded); optional `user` ≤ 100, `source`
 *   ≤ 100, `note` ≤ 25000. 202 `{ result: "Request will be processed", … }`.
 */

export const SERVICES = ['slack', 'discord', 'teams', 'pagerduty', 'opsgenie', 'generic'] as const;
export type Service = (typeof SERVICES)[number];

/** One request as a stand-in saw it, with what it found wrong (empty: accepted). */
export interface ServiceRequest {
  service: Service;
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: unknown;
  problems: string[];
  status: number;
}

type Json = unknown;
type Obj = Record<string, Json>;
const isObj = (v: Json): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: Json): v is string => typeof v === 'string';
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Collects problems as "path: what", each check naming its field the way the service's errors do. */
class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path}: ${message}`);
  }
  /** a string, `min` to `max` characters (code points, as the services count); undefined: optional and absent */
  text(path: string, value: Json, { min = 0, max, required = false }: { min?: number; max: number; required?: boolean }): void {
    if (value === undefined) {
      if (required) this.add(path, 'is required');
      return;
    }
    if (!isStr(value)) return this.add(path, `must be a string, not ${JSON.stringify(value)?.slice(0, 40)}`);
    const length = [...value].length;
    if (length < min) this.add(path, `must be at least ${min} characters`);
    if (length > max) this.add(path, `must be ${max} or fewer in length (is ${length})`);
  }
  oneOf(path: string, value: Json, allowed: readonly string[], required = false): void {
    if (value === undefined) {
      if (required) this.add(path, 'is required');
      return;
    }
    if (!isStr(value) || !allowed.map((a) => a.toLowerCase()).includes(value.toLowerCase())) this.add(path, `must be one of ${allowed.join(', ')} (is ${JSON.stringify(value)})`);
  }
}

const chars = (v: Json) => (isStr(v) ? [...v].length : 0);

// ---------------------------------------------------------------- Slack

const SLACK_BLOCK_TYPES = ['header', 'section', 'context', 'divider', 'actions', 'image', 'rich_text', 'markdown', 'file', 'input', 'video'];

function slackTextObject(p: Problems, path: string, value: Json, max: number, types: readonly string[] = ['plain_text', 'mrkdwn']): void {
  if (!isObj(value)) return p.add(path, 'must be a text object');
  p.oneOf(`${path}.type`, value.type, types, true);
  p.text(`${path}.text`, value.text, { min: 1, max, required: true });
  if (value.emoji !== undefined && typeof value.emoji !== 'boolean') p.add(`${path}.emoji`, 'must be a boolean');
}

function checkSlack(body: Json): { status: number; answer: string; problems: string[] } {
  const p = new Problems();
  if (!isObj(body)) return { status: 400, answer: 'invalid_payload', problems: ['body: must be a JSON object'] };
  const { text, blocks } = body;
  if (blocks === undefined && body.attachments === undefined) {
    if (!isStr(text) || text.trim() === '') return { status: 400, answer: 'no_text', problems: ['text: is required without blocks'] };
  }
  if (text !== undefined) p.text('text', text, { max: 40_000 });
  if (blocks !== undefined) {
    if (!Array.isArray(blocks) || blocks.length === 0 || blocks.length > 50) p.add('blocks', 'must be an array of 1 to 50 blocks');
    else
      blocks.forEach((block, i) => {
        const at = `blocks[${i}]`;
        if (!isObj(block)) return p.add(at, 'must be an object');
        p.oneOf(`${at}.type`, block.type, SLACK_BLOCK_TYPES, true);
        if (block.type === 'header') slackTextObject(p, `${at}.text`, block.text, 150, ['plain_text']);
        if (block.type === 'section') {
          if (block.text === undefined && block.fields === undefined) p.add(at, 'a section needs text or fields');
          if (block.text !== undefined) slackTextObject(p, `${at}.text`, block.text, 3000);
          if (block.fields !== undefined) {
            if (!Array.isArray(block.fields) || block.fields.length > 10) p.add(`${at}.fields`, 'must be an array of at most 10 text objects');
            else block.fields.forEach((f, j) => slackTextObject(p, `${at}.fields[${j}]`, f, 2000));
          }
        }
        if (block.type === 'context') {
          if (!Array.isArray(block.elements) || block.elements.length === 0 || block.elements.length > 10) p.add(`${at}.elements`, 'must be an array of 1 to 10 elements');
          else block.elements.forEach((e, j) => (isObj(e) && e.type === 'image' ? undefined : slackTextObject(p, `${at}.elements[${j}]`, e, 3000)));
        }
      });
  }
  return p.list.length ? { status: 400, answer: 'invalid_blocks', problems: p.list } : { status: 200, answer: 'ok', problems: [] };
}

// ---------------------------------------------------------------- Discord

function checkDiscord(body: Json): { status: number; answer: string; problems: string[] } {
  const invalid = (problems: string[]) => {
    // Discord nests its errors by path: { embeds: { 0: { title: { _errors: [...] } } } }
    const errors: Obj = {};
    for (const problem of problems) {
      const [path, message] = problem.split(/: (.*)/s);
      let node = errors;
      for (const key of path.split(/[.[\]]+/).filter(Boolean)) node = (node[key] ??= {}) as Obj;
      ((node._errors ??= []) as Obj[]).push({ code: /length/.test(message) ? 'BASE_TYPE_MAX_LENGTH' : 'BASE_TYPE_INVALID', message });
    }
    return { status: 400, answer: JSON.stringify({ code: 50035, errors, message: 'Invalid Form Body' }), problems };
  };
  if (!isObj(body)) return invalid(['body: must be a JSON object']);
  const p = new Problems();
  const { content, embeds } = body;
  if ((content === undefined || content === '') && (embeds === undefined || (Array.isArray(embeds) && embeds.length === 0))) {
    return { status: 400, answer: JSON.stringify({ message: 'Cannot send an empty message', code: 50006 }), problems: ['body: content or embeds is required'] };
  }
  p.text('content', content, { max: 2000 });
  p.text('username', body.username, { min: 1, max: 80 });
  if (body.allowed_mentions !== undefined) {
    const am = body.allowed_mentions;
    if (!isObj(am) || (am.parse !== undefined && !(Array.isArray(am.parse) && am.parse.every((x) => ['roles', 'users', 'everyone'].includes(x as string))))) {
      p.add('allowed_mentions.parse', 'must be an array of roles, users, everyone');
    }
  }
  let total = 0;
  if (embeds !== undefined) {
    if (!Array.isArray(embeds) || embeds.length > 10) p.add('embeds', 'must be an array of at most 10 embeds');
    else
      embeds.forEach((embed, i) => {
        const at = `embeds[${i}]`;
        if (!isObj(embed)) return p.add(at, 'must be an object');
        p.text(`${at}.title`, embed.title, { max: 256 });
        p.text(`${at}.description`, embed.description, { max: 4096 });
        total += chars(embed.title) + chars(embed.description);
        if (embed.color !== undefined && embed.color !== null && !(Number.isInteger(embed.color) && (embed.color as number) >= 0 && (embed.color as number) <= 0xffffff)) {
          p.add(`${at}.color`, `must be an integer from 0 to 16777215 (is ${JSON.stringify(embed.color)})`);
        }
        if (embed.timestamp !== undefined && embed.timestamp !== null && !(isStr(embed.timestamp) && ISO_8601.test(embed.timestamp))) p.add(`${at}.timestamp`, 'must be an ISO 8601 timestamp');
        if (embed.footer !== undefined) {
          if (!isObj(embed.footer)) p.add(`${at}.footer`, 'must be an object');
          else {
            p.text(`${at}.footer.text`, embed.footer.text, { min: 1, max: 2048, required: true });
            total += chars(embed.footer.text);
          }
        }
        if (embed.author !== undefined) {
          if (!isObj(embed.author)) p.add(`${at}.author`, 'must be an object');
          else {
            p.text(`${at}.author.name`, embed.author.name, { min: 1, max: 256, required: true });
            total += chars(embed.author.name);
          }
        }
        if (embed.fields !== undefined) {
          if (!Array.isArray(embed.fields) || embed.fields.length > 25) p.add(`${at}.fields`, 'must be an array of at most 25 fields');
          else
            embed.fields.forEach((f, j) => {
              if (!isObj(f)) return p.add(`${at}.fields[${j}]`, 'must be an object');
              p.text(`${at}.fields[${j}].name`, f.name, { min: 1, max: 256, required: true });
              p.text(`${at}.fields[${j}].value`, f.value, { min: 1, max: 1024, required: true });
              if (f.inline !== undefined && typeof f.inline !== 'boolean') p.add(`${at}.fields[${j}].inline`, 'must be a boolean');
              total += chars(f.name) + chars(f.value);
            });
        }
      });
  }
  if (total > 6000) p.add('embeds', `Embed size exceeds maximum size of 6000 (is ${total})`);
  return p.list.length ? invalid(p.list) : { status: 204, answer: '', problems: [] };
}

// ---------------------------------------------------------------- Microsoft Teams (Adaptive Card)

const CARD_ELEMENTS = ['TextBlock', 'FactSet', 'Container', 'ColumnSet', 'Image', 'ImageSet', 'RichTextBlock', 'ActionSet', 'Table', 'Media'];

function checkTeams(body: Json, raw: string): { status: number; answer: string; problems: string[] } {
  const p = new Problems();
  if (Buffer.byteLength(raw) > 28 * 1024) p.add('body', 'the message is larger than 28 KB');
  if (!isObj(body)) p.add('body', 'must be a JSON object');
  else {
    if (body.type !== 'message') p.add('type', 'must be "message"');
    const attachments = body.attachments;
    if (!Array.isArray(attachments) || attachments.length === 0) p.add('attachments', 'must be a non-empty array');
    else
      attachments.forEach((a, i) => {
        const at = `attachments[${i}]`;
        if (!isObj(a)) return p.add(at, 'must be an object');
        if (a.contentType !== 'application/vnd.microsoft.card.adaptive') p.add(`${at}.contentType`, 'must be application/vnd.microsoft.card.adaptive');
        const card = a.content;
        if (!isObj(card)) return p.add(`${at}.content`, 'must be an Adaptive Card object');
        if (card.type !== 'AdaptiveCard') p.add(`${at}.content.type`, 'must be "AdaptiveCard"');
        if (!isStr(card.version) || !/^1\.[0-5]$/.test(card.version)) p.add(`${at}.content.version`, 'must be an Adaptive Card version Teams renders (1.0 to 1.5)');
        if (!Array.isArray(card.body)) return p.add(`${at}.content.body`, 'must be an array of elements');
        card.body.forEach((el, j) => {
          const e = `${at}.content.body[${j}]`;
          if (!isObj(el)) return p.add(e, 'must be an object');
          p.oneOf(`${e}.type`, el.type, CARD_ELEMENTS, true);
          if (el.type === 'TextBlock') {
            if (!isStr(el.text)) p.add(`${e}.text`, 'is required: a string');
            p.oneOf(`${e}.color`, el.color, ['Default', 'Dark', 'Light', 'Accent', 'Good', 'Warning', 'Attention']);
            p.oneOf(`${e}.size`, el.size, ['Default', 'Small', 'Medium', 'Large', 'ExtraLarge']);
            p.oneOf(`${e}.weight`, el.weight, ['Default', 'Lighter', 'Bolder']);
            p.oneOf(`${e}.fontType`, el.fontType, ['Default', 'Monospace']);
            for (const flag of ['wrap', 'isSubtle']) if (el[flag] !== undefined && typeof el[flag] !== 'boolean') p.add(`${e}.${flag}`, 'must be a boolean');
          }
          if (el.type === 'FactSet') {
            if (!Array.isArray(el.facts)) p.add(`${e}.facts`, 'is required: an array');
            else el.facts.forEach((f, k) => (isObj(f) && isStr(f.title) && isStr(f.value) ? undefined : p.add(`${e}.facts[${k}]`, 'must have a string title and value')));
          }
        });
      });
  }
  return p.list.length
    ? { status: 400, answer: JSON.stringify({ error: { code: 'InvalidRequestContent', message: p.list.join('; ') } }), problems: p.list }
    : { status: 202, answer: '', problems: [] };
}

// ---------------------------------------------------------------- PagerDuty Events API v2

function checkPagerDuty(body: Json, raw: string): { status: number; answer: string; problems: string[] } {
  const errors: string[] = [];
  if (Buffer.byteLength(raw) > 512 * 1024) errors.push('Event is larger than 512 KB');
  if (!isObj(body)) errors.push('Event must be a JSON object');
  else {
    const { routing_key, event_action, dedup_key, payload } = body;
    if (!isStr(routing_key)) errors.push("'routing_key' is missing or blank");
    else {
      if (routing_key.length !== 32) errors.push("Length of 'routing_key' is incorrect (should be 32 characters)");
      if (!/^[A-Za-z0-9]*$/.test(routing_key)) errors.push("'routing_key' cannot contain non-alphanumeric characters.");
    }
    if (!['trigger', 'acknowledge', 'resolve'].includes(event_action as string)) errors.push("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)");
    if (dedup_key !== undefined && !(isStr(dedup_key) && dedup_key.length <= 255)) errors.push("'dedup_key' must be a string of at most 255 characters");
    if ((event_action === 'acknowledge' || event_action === 'resolve') && !isStr(dedup_key)) errors.push(`'dedup_key' is required to ${event_action}`);
    if (event_action === 'trigger') {
      if (!isObj(payload)) errors.push("'payload' is missing or not an object");
      else {
        if (!isStr(payload.summary) || payload.summary === '') errors.push("'payload.summary' is missing or blank");
        else if (payload.summary.length > 1024) errors.push(`'payload.summary' is longer than 1024 characters (${payload.summary.length})`);
        if (!isStr(payload.source) || payload.source === '') errors.push("'payload.source' is missing or blank");
        if (!['critical', 'error', 'warning', 'info'].includes(payload.severity as string)) errors.push("'payload.severity' is invalid (must be one of: critical, error, warning, info)");
        if (payload.timestamp !== undefined && !(isStr(payload.timestamp) && ISO_8601.test(payload.timestamp))) errors.push("'payload.timestamp' is not a valid ISO 8601 timestamp");
        for (const f of ['component', 'group', 'class']) if (payload[f] !== undefined && !isStr(payload[f])) errors.push(`'payload.${f}' must be a string`);
        if (payload.custom_details !== undefined && !isObj(payload.custom_details)) errors.push("'payload.custom_details' must be an object");
      }
    }
  }
  return errors.length
    ? { status: 400, answer: JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors }), problems: errors }
    : { status: 202, answer: JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: (body as Obj).dedup_key ?? randomUUID() }), problems: [] };
}

// ---------------------------------------------------------------- Opsgenie Create Alert

function checkOpsgenie(body: Json, headers: http.IncomingHttpHeaders): { status: number; answer: string; problems: string[] } {
  const requestId = randomUUID();
  if (!/^GenieKey \S+$/.test(headers.authorization ?? '')) {
    return { status: 401, answer: JSON.stringify({ message: 'Could not authenticate', took: 0, requestId }), problems: ['Authorization: must be "GenieKey <API key>"'] };
  }
  const p = new Problems();
  if (!isObj(body)) p.add('body', 'must be a JSON object');
  else {
    p.text('message', body.message, { min: 1, max: 130, required: true });
    p.text('alias', body.alias, { max: 512 });
    p.text('description', body.description, { max: 15_000 });
    p.text('entity', body.entity, { max: 512 });
    p.text('source', body.source, { max: 100 });
    p.text('user', body.user, { max: 100 });
    p.text('note', body.note, { max: 25_000 });
    p.oneOf('priority', body.priority, ['P1', 'P2', 'P3', 'P4', 'P5']);
    if (body.tags !== undefined) {
      if (!Array.isArray(body.tags) || body.tags.length > 20) p.add('tags', 'must be an array of at most 20 tags');
      else body.tags.forEach((t, i) => p.text(`tags[${i}]`, t, { min: 1, max: 50, required: true }));
    }
    if (body.actions !== undefined && !(Array.isArray(body.actions) && body.actions.length <= 10 && body.actions.every((a) => isStr(a) && a.length <= 50))) p.add('actions', 'must be at most 10 strings of at most 50 characters');
    if (body.details !== undefined) {
      if (!isObj(body.details)) p.add('details', 'must be a map of strings');
      else {
        let size = 0;
        for (const [key, value] of Object.entries(body.details)) {
          if (!isStr(value)) p.add(`details.${key}`, `must be a string (is ${JSON.stringify(value)?.slice(0, 40)})`);
          size += key.length + chars(value);
        }
        if (size > 8000) p.add('details', `must be at most 8000 characters in all (is ${size})`);
      }
    }
  }
  return p.list.length
    ? { status: 422, answer: JSON.stringify({ message: 'Request body is not processable. Please check the errors.', errors: Object.fromEntries(p.list.map((x) => x.split(/: (.*)/s))), took: 0, requestId }), problems: p.list }
    : { status: 202, answer: JSON.stringify({ result: 'Request will be processed', took: 0.01, requestId }), problems: [] };
}

/** Opsgenie Close Alert: `closed` is the alias (or id) in the path, as Opsgenie decodes it. */
function checkOpsgenieClose(body: Json, headers: http.IncomingHttpHeaders, url: URL): { status: number; answer: string; problems: string[] } {
  const requestId = randomUUID();
  if (!/^GenieKey \S+$/.test(headers.authorization ?? '')) {
    return { status: 401, answer: JSON.stringify({ message: 'Could not authenticate', took: 0, requestId }), problems: ['Authorization: must be "GenieKey <API key>"'] };
  }
  const p = new Problems();
  const type = url.searchParams.get('identifierType') ?? 'id';
  if (!['id', 'tiny', 'alias'].includes(type)) p.add('identifierType', 'must be id, tiny or alias');
  if (!isObj(body)) p.add('body', 'must be a JSON object');
  else {
    p.text('user', body.user, { max: 100 });
    p.text('source', body.source, { max: 100 });
    p.text('note', body.note, { max: 25_000 });
  }
  return p.list.length
    ? { status: 422, answer: JSON.stringify({ message: 'Request body is not processable. Please check the errors.', errors: Object.fromEntries(p.list.map((x) => x.split(/: (.*)/s))), took: 0, requestId }), problems: p.list }
    : { status: 202, answer: JSON.stringify({ result: 'Request will be processed', took: 0.01, requestId }), problems: [] };
}

// ---------------------------------------------------------------- generic: the documented default payload

function checkGeneric(body: Json): { status: number; answer: string; problems: string[] } {
  const p = new Problems();
  if (!isObj(body)) p.add('body', 'must be a JSON object');
  else {
    // a digest's: "alert.<condition>.digest"
    if (!isStr(body.type) || !/^alert\.[a-z_]+(\.digest)?$/.test(body.type)) p.add('type', 'must be "alert.<condition>" or "alert.<condition>.digest"');
    if (!isStr(body.text) || body.text === '') p.add('text', 'is required');
    if (!isStr(body.condition) || String(body.type).replace(/\.digest$/, '') !== `alert.${body.condition}`) p.add('condition', 'must match type');
    for (const key of ['workflow', 'run', 'event', 'config', 'delivery']) if (!isObj(body[key])) p.add(key, 'must be an object');
    if (isObj(body.workflow) && !isStr(body.workflow.id)) p.add('workflow.id', 'is required');
    if (isObj(body.run) && !isStr(body.run.id)) p.add('run.id', 'is required');
    if (isObj(body.delivery) && !isStr(body.delivery.id)) p.add('delivery.id', 'is required');
    if (!(body.error === null || isObj(body.error))) p.add('error', 'must be an object or null');
  }
  return p.list.length ? { status: 400, answer: p.list.join('; '), problems: p.list } : { status: 200, answer: 'ok', problems: [] };
}

// ---------------------------------------------------------------- the server

/**
 * One HTTP server for all six: `url(service)` gives a fresh path whose first segment names the
 * service (PagerDuty's and Opsgenie's keep their API paths after it), and every request is recorded.
 */
export class PresetReceivers {
  private server = http.createServer((req, res) => this.onRequest(req, res));
  readonly requests: ServiceRequest[] = [];
  base = '';

  static async start(): Promise<PresetReceivers> {
    const r = new PresetReceivers();
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.base = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  /** a new URL of this service's stand-in */
  url(service: Service): string {
    const id = randomUUID().slice(0, 8);
    const rest = service === 'pagerduty' ? '/v2/enqueue' : service === 'opsgenie' ? '/v2/alerts' : '';
    return `${this.base}/${service}/${id}${rest}`;
  }

  at(url: string): ServiceRequest[] {
    const path = new URL(url).pathname;
    return this.requests.filter((r) => r.path === path);
  }

  async waitFor(url: string, count = 1, timeoutMs = 20_000): Promise<ServiceRequest[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.at(url).length < count) {
      if (Date.now() > deadline) throw new Error(`${url} received ${this.at(url).length} of ${count} requests within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.at(url);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '/').split('?')[0];
      const service = path.split('/')[1] as Service;
      let verdict: { status: number; answer: string; problems: string[] };
      let body: unknown;
      if (!SERVICES.includes(service)) verdict = { status: 404, answer: 'no such service', problems: [`no stand-in for ${path}`] };
      else if (req.method !== 'POST') verdict = { status: 405, answer: 'POST only', problems: ['method: must be POST'] };
      else if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) verdict = { status: 415, answer: 'content-type must be application/json', problems: ['content-type'] };
      else {
        try {
          body = JSON.parse(raw);
        } catch {
          body = undefined;
        }
        if (body === undefined) verdict = { status: 400, answer: service === 'slack' ? 'invalid_payload' : 'the body is not JSON', problems: ['body: not JSON'] };
        else if (service === 'slack') verdict = checkSlack(body);
        else if (service === 'discord') verdict = checkDiscord(body);
        else if (service === 'teams') verdict = checkTeams(body, raw);
        else if (service === 'pagerduty') verdict = checkPagerDuty(body, raw);
        else if (service === 'opsgenie' && /\/v2\/alerts\/[^/]+\/close$/.test(path)) verdict = checkOpsgenieClose(body, req.headers, new URL(req.url ?? '/', this.base));
        else if (service === 'opsgenie') verdict = checkOpsgenie(body, req.headers);
        else verdict = checkGeneric(body);
      }
      this.requests.push({ service, path, headers: req.headers, raw, body, problems: verdict.problems, status: verdict.status });
      const json = verdict.answer.startsWith('{');
      res.writeHead(verdict.status, verdict.answer ? { 'content-type': json ? 'application/json' : 'text/plain' } : {});
      res.end(verdict.answer);
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
