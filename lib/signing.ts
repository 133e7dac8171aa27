import { createHmac } from 'node:crypto';

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com):
 * signature = base64(HMAC-SHA256(secretBytes, `${id}.${timestamp}.${body}`)),
 * sent as `v1,<signature>`; several space-separated during a secret rotation.
 */
export const SECRET_PREFIX = 'whsec_';

export class WebhookSigningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookSigningError';
  }
}

function secretBytes(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new WebhookSigningError('signing secret must start with whsec_');
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

export function signPayload(secret: string, webhookId: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretBytes(secret)).update(`${webhookId}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

/** The three Standard Webhooks headers for one attempt, signed with every active secret. */
export function signatureHeaders(secrets: string[], webhookId: string, body: string, now = Date.now()): Record<string, string> {
  if (secrets.length === 0) throw new WebhookSigningError('no active signing secret');
  if (webhookId.includes('.')) throw new WebhookSigningError('webhook-id must not contain "."');
  const timestamp = Math.floor(now / 1000);
  return {
    'webhook-id': webhookId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((s) => signPayload(s, webhookId, timestamp, body)).join(' '),
  };
}
