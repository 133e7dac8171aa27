/**
 * The bench's open-loop sender (bench/lib/sender.ts): run as a process of its own (forked), so that the
 * service under measurement does not also run the sender, as MeshHook's own process does not: a busy
 * service then delays only its answers, never the sends, and the sender's CPU is its own figure. Also
 * imported (`sendAll`) to send from the bench's own process, the old way.
 *
 * Forked, one message from the parent, { type: 'run', url, headers, items: [{ atMs, body }], drainMs }: each
 * item is POSTed to `url` at `atMs` after the run's start by this process's clock, with `%DUE%` in its
 * body replaced by that moment as an ISO time. When every request was answered, or `drainMs` after the
 * last send, it answers { type: 'done', startWallMs, sentMs, doneMs, maxLagMs, samples: [{ t0, answered,
 * status, error, deliveryId }] } (times in ms after the start) and waits for the next run.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function sendAll({ url, headers, items, drainMs }) {
  const samples = items.map(() => ({ t0: null, answered: null, status: null, error: null, deliveryId: null }));
  let pending = 0;
  let maxLagMs = 0;
  const start = performance.now();
  const startWallMs = performance.timeOrigin + start;
  for (let k = 0; k < items.length; k++) {
    const due = start + items[k].atMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const now = performance.now();
    maxLagMs = Math.max(maxLagMs, now - due);
    const sample = samples[k];
    sample.t0 = now - start;
    pending++;
    const body = items[k].body.replace('%DUE%', new Date(Math.round(startWallMs + items[k].atMs)).toISOString());
    fetch(url, { method: 'POST', headers, body })
      .then(async (res) => {
        sample.answered = performance.now() - start;
        sample.status = res.status;
        const text = await res.text().catch(() => '');
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        if (res.status !== 202) sample.error = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        else sample.deliveryId = parsed?.deliveries?.[0]?.deliveryId ?? null;
      })
      .catch((err) => {
        sample.error = `request failed: ${err.message}`;
      })
      .finally(() => pending--);
  }
  const sent = performance.now();
  while (pending > 0 && performance.now() - sent < drainMs) await sleep(20);
  return { type: 'done', startWallMs, sentMs: sent - start, doneMs: performance.now() - start, maxLagMs, samples };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  process.on('message', (msg) => {
    if (msg?.type !== 'run') return;
    sendAll(msg).then(
      (result) => process.send(result),
      (err) => process.send({ type: 'error', message: String(err?.stack ?? err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ type: 'ready' });
}
