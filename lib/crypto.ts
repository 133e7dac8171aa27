import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * AES-256-GCM sealing for data at rest. A keyring holds named 32-byte keys:
 * the first one seals, every one opens, so a new key can be put first and the
 * old ones kept until every row has been rewritten.
 */
export const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface Keyring {
  /** id of the key that seals new data */
  readonly primaryId: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

export interface Sealed {
  keyId: string;
  /** base64 of iv | ciphertext | tag */
  ciphertext: string;
}

/** Parses `id:base64key,id2:base64key` (the format of ALERTS_ENCRYPTION_KEYS). */
export function parseKeyring(spec: string): Keyring {
  const keys = new Map<string, Buffer>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const sep = part.indexOf(':');
    if (sep <= 0) throw new Error(`encryption key "${part.slice(0, 8)}…" must look like id:base64key`);
    const id = part.slice(0, sep);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new Error(`encryption key id "${id}" must be 1-64 letters, digits, _ or -`);
    const key = Buffer.from(part.slice(sep + 1), 'base64');
    if (key.length !== KEY_BYTES) throw new Error(`encryption key "${id}" must be ${KEY_BYTES} bytes of base64, got ${key.length} bytes`);
    if (keys.has(id)) throw new Error(`encryption key id "${id}" appears twice`);
    keys.set(id, key);
  }
  const primaryId = keys.keys().next().value;
  if (primaryId === undefined) throw new Error('the encryption keyring is empty');
  return { primaryId, keys };
}

export function newKeySpec(id = `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`): string {
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

/** `aad` binds the ciphertext to its owner (a config id), so sealed values cannot be swapped between rows. */
export function seal(keyring: Keyring, plaintext: string, aad: string): Sealed {
  const { keyId, data } = sealBytes(keyring, Buffer.from(plaintext, 'utf8'), aad);
  return { keyId, ciphertext: data.toString('base64') };
}

export function open(keyring: Keyring, sealed: Sealed, aad: string): string {
  return openBytes(keyring, sealed.keyId, Buffer.from(sealed.ciphertext, 'base64'), aad).toString('utf8');
}

/** The bytes form of seal (the Temporal payload codec uses it): `data` is iv | ciphertext | tag. */
export function sealBytes(keyring: Keyring, plaintext: Uint8Array, aad: string): { keyId: string; data: Buffer } {
  const key = keyring.keys.get(keyring.primaryId)!;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId: keyring.primaryId, data: Buffer.concat([iv, body, cipher.getAuthTag()]) };
}

/** Throws when the key is not in the keyring, or when the data or the aad is not what was sealed. */
export function openBytes(keyring: Keyring, keyId: string, data: Uint8Array, aad: string): Buffer {
  const key = keyring.keys.get(keyId);
  if (!key) throw new Error(`encryption key "${keyId}" is not in the keyring (ALERTS_ENCRYPTION_KEYS)`);
  const raw = Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('the ciphertext is too short');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
}

/** API tokens are long random strings, so a plain SHA-256 is a sound way to store them. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function newApiToken(): string {
  return `mha_${randomBytes(32).toString('base64url')}`;
}

/** Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
