/**
 * Polls `probe` every 100 ms until it answers something truthy, and answers that; past `timeoutMs`
 * it throws, naming `what` and the last answer. For what a test waits to see (a row, a workflow
 * status), never for how fast it comes.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const value = await probe();
    if (value) return value;
    last = value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise<void>((resolve) => setTimeout(resolve, 100));
  }
}
