/**
 * Encrypted Temporal payloads: the payload codec of every client and worker of MeshHook Alerts, and
 * of the codec endpoint the Temporal Web UI calls (api/routes/codec.ts).
 *
 * What it does. Every payload that leaves a process for Temporal (workflow and activity inputs and
 * results, signals, summaries, failure details, and failure messages, which the failure converter of
 * `alertsDataConverter` moves into a payload) is replaced by an envelope:
 *
 *   metadata  encoding: binary/encrypted   encryption-key-id: <key id>   meshhook-project: <project>
 *   data      AES-256-GCM(the whole original payload, proto-encoded), iv | ciphertext | tag
 *
 * with the keyring of the data at rest (ALERTS_ENCRYPTION_KEYS or the embedded key file): the first
 * key encrypts, every key decrypts, so a key rotation (a new key put first) leaves older histories
 * readable. The keyring is the seam where a key store plugs in.
 *
 * Project scoping. The codec endpoint decodes a payload only for a token of the project the payload
 * belongs to, so each envelope names its project in `meshhook-project`. That tag is not secret (the
 * workflows carry it as the AlertProjectId search attribute too) but it is authenticated: it is the
 * AES-GCM additional data, so changing, adding or removing it makes the payload undecryptable.
 *
 * A codec sees bytes, not our objects, and gets no project when asked to encode. It finds the project
 * in two places, in this order:
 *
 * 1. In the payload itself: a JSON object with a top-level `projectId`. Every workflow input of
 *    ours has one (AlertDeliveryInput, ProcessExecutionEventInput), and so does the first argument of
 *    the activities that take an AlertDeliveryInput.
 * 2. From the workflow the payload belongs to. The SDK tells the codec which workflow a payload is for
 *    (its serialization context: the workflow id, also for that workflow's activities). The codec
 *    remembers the project of each workflow from the payloads it tags (case 1) and from the tags of
 *    the envelopes it decrypts, and a payload without a `projectId` of its own (a result, a summary,
 *    a signal, a failure message, a null) takes that project. Every process learns it before it
 *    needs it: a client encodes a workflow's input before its summary; a worker decrypts a
 *    workflow's input (the first activation of a replay carries it) before it encodes that
 *    workflow's commands and results, and an activity's (tagged) input before its result or failure.
 *    A workflow id never belongs to two projects (delivery ids contain the config id, event workflow
 *    ids the project), so what is remembered is never wrong; at worst, when the memory (the most
 *    recent 20 000 workflows) has lost a long-lived workflow, a payload goes out untagged. That is
 *    rare: a worker replays a workflow it no longer caches (the SDK's default cache holds about
 *    2 000 here), and a replay decrypts the workflow's input first, so the codec learns it again.
 *    The memory costs about 160 bytes a workflow (bench:heap), at most a few MiB.
 *
 * An untagged payload is encrypted all the same; workers decrypt it as usual, and the codec endpoint
 * decodes it for no token. The endpoint's encode tags with the caller's project and refuses a payload
 * that names another (in its metadata or its JSON) or is already an envelope.
 *
 * Payloads that are not envelopes (histories written before the codec existed) pass through decode
 * unchanged, so such workflows keep running.
 */
import type { DataConverter, Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import { METADATA_ENCODING_KEY } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { openBytes, sealBytes, type Keyring } from './crypto';

export const ENCODING_ENCRYPTED = 'binary/encrypted';
export const METADATA_KEY_ID = 'encryption-key-id';
export const METADATA_PROJECT = 'meshhook-project';
/** Module of the failure converter that moves failure messages and stack traces into (encrypted) payloads. */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

const REMEMBERED_WORKFLOWS = 20_000;
const MAX_PROJECT_ID_CHARS = 200;
/** Kept apart from the data at rest, whose AAD is a row id. */
const aadFor = (projectId: string | undefined) => `meshhook-alerts/temporal-payload/v1\0${projectId ?? ''}`;

const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);
const bytesOf = (value: string) => new Uint8Array(Buffer.from(value, 'utf8'));

export const isEncrypted = (payload: Payload) => text(payload.metadata?.[METADATA_ENCODING_KEY]) === ENCODING_ENCRYPTED;
/** The project an envelope is tagged with (undefined when untagged or not an envelope). */
export const payloadProject = (payload: Payload) => (isEncrypted(payload) ? text(payload.metadata?.[METADATA_PROJECT]) || undefined : undefined);

/** The `projectId` a JSON payload names at its top level, if any. */
export function projectNamedIn(payload: Payload): string | undefined {
  if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== 'json/plain' || !payload.data) return undefined;
  const json = text(payload.data)!;
  // the quick test must not miss a key written with escapes (`"proj\u0065ctId"`), which JSON.parse reads the same
  if (!json.includes('"projectId"') && !json.includes('\\u')) return undefined;
  try {
    const value = JSON.parse(json) as unknown;
    const projectId = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { projectId?: unknown }).projectId : undefined;
    return typeof projectId === 'string' && projectId.length > 0 && projectId.length <= MAX_PROJECT_ID_CHARS ? projectId : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the codec endpoint's encodeFor/decodeFor refused a request: a payload that is not the caller's
 * project's (`not_yours`), or one it cannot use (`unusable`: already encrypted, or not decryptable).
 * The route says what that means in HTTP.
 */
export class PayloadRefusedError extends Error {
  constructor(
    readonly reason: 'not_yours' | 'unusable',
    message: string,
  ) {
    super(message);
    this.name = 'PayloadRefusedError';
  }
}

export class AlertsPayloadCodec implements PayloadCodec {
  /** workflow (namespace + id) -> project, most recently used last */
  private readonly workflowProjects = new Map<string, string>();

  constructor(private readonly keyring: Keyring) {}

  async encode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    const named = payloads.map(projectNamedIn);
    const workflow = workflowKey(context);
    const own = named.find((p) => p !== undefined);
    if (workflow && own) this.remember(workflow, own);
    const fallback = workflow ? this.workflowProjects.get(workflow) : undefined;
    return payloads.map((payload, i) => this.seal(payload, named[i] ?? fallback));
  }

  async decode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    const workflow = workflowKey(context);
    return payloads.map((payload) => {
      if (!isEncrypted(payload)) return payload;
      const projectId = payloadProject(payload);
      if (workflow && projectId) this.remember(workflow, projectId);
      return this.open(payload);
    });
  }

  /**
   * The codec endpoint's encode: every payload is tagged with the caller's project. A payload that names
   * a project anywhere the codec reads one (its `meshhook-project` metadata, whatever its encoding, or
   * a `projectId` in its JSON) must name the caller's, and an envelope is not sealed again: either
   * would put the caller's tag around a payload that says it is someone else's. The whole request is
   * refused before anything is sealed.
   */
  encodeFor(projectId: string, payloads: Payload[]): Payload[] {
    payloads.forEach((payload, i) => {
      const tagged = payload.metadata?.[METADATA_PROJECT];
      if (tagged !== undefined && tagged !== null && text(tagged) !== projectId) {
        throw new PayloadRefusedError('not_yours', `payloads[${i}] is tagged with another project (${METADATA_PROJECT} metadata); a token encodes for its own project only`);
      }
      const named = projectNamedIn(payload);
      if (named !== undefined && named !== projectId) throw new PayloadRefusedError('not_yours', `payloads[${i}] names another project; a token encodes for its own project only`);
      if (isEncrypted(payload)) throw new PayloadRefusedError('unusable', `payloads[${i}] is already encrypted (encoding ${ENCODING_ENCRYPTED}); encode takes plain payloads`);
    });
    return payloads.map((payload) => this.seal(payload, projectId));
  }

  /**
   * The codec endpoint's decode: only envelopes tagged with the caller's project are decrypted. One
   * that is untagged or another project's refuses the whole request, before anything is decrypted.
   */
  decodeFor(projectId: string, payloads: Payload[]): Payload[] {
    payloads.forEach((payload, i) => {
      if (!isEncrypted(payload)) return;
      const tag = payloadProject(payload);
      if (tag === undefined) throw new PayloadRefusedError('not_yours', `payloads[${i}] is not tagged with a project; no API token can decode it`);
      if (tag !== projectId) throw new PayloadRefusedError('not_yours', `payloads[${i}] belongs to another project; a token decodes its own project's payloads only`);
    });
    return payloads.map((payload, i) => {
      if (!isEncrypted(payload)) return payload;
      try {
        return this.open(payload);
      } catch (err) {
        throw new PayloadRefusedError('unusable', `payloads[${i}] could not be decrypted: ${(err as Error).message}`);
      }
    });
  }

  private seal(payload: Payload, projectId: string | undefined): Payload {
    const { keyId, data } = sealBytes(this.keyring, temporal.api.common.v1.Payload.encode(payload).finish(), aadFor(projectId));
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: bytesOf(ENCODING_ENCRYPTED),
        [METADATA_KEY_ID]: bytesOf(keyId),
        ...(projectId === undefined ? {} : { [METADATA_PROJECT]: bytesOf(projectId) }),
      },
      data: new Uint8Array(data),
    };
  }

  private open(payload: Payload): Payload {
    const keyId = text(payload.metadata?.[METADATA_KEY_ID]);
    if (!keyId) throw new Error(`an encrypted payload without its ${METADATA_KEY_ID}`);
    let plain: Buffer;
    try {
      plain = openBytes(this.keyring, keyId, payload.data ?? new Uint8Array(), aadFor(payloadProject(payload)));
    } catch (err) {
      if (/not in the keyring|too short/.test((err as Error).message)) throw err;
      throw new Error('the payload does not decrypt: its data or its project tag was changed, or it was encrypted with another key of that id');
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }

  private remember(workflow: string, projectId: string): void {
    if (this.workflowProjects.get(workflow) === projectId) {
      this.workflowProjects.delete(workflow); // re-inserted below, as the most recent
    } else if (this.workflowProjects.size >= REMEMBERED_WORKFLOWS) {
      this.workflowProjects.delete(this.workflowProjects.keys().next().value!);
    }
    this.workflowProjects.set(workflow, projectId);
  }
}

const workflowKey = (context: SerializationContext | undefined) => (context?.workflowId ? `${context.namespace}\0${context.workflowId}` : undefined);

/**
 * The data converter of every Temporal client and worker of MeshHook Alerts, MeshHook's own client
 * included (see index.ts): payloads encrypted by the codec, failure messages moved into payloads.
 */
export function alertsDataConverter(keyring: Keyring): DataConverter & { payloadCodecs: [AlertsPayloadCodec] } {
  return { payloadCodecs: [new AlertsPayloadCodec(keyring)], failureConverterPath: FAILURE_CONVERTER_PATH };
}
