/** A loop started by the service that stop() ends, waiting for a round under way. */
export interface Monitor {
  stop(): Promise<void>;
  /** true once stop() was called */
  readonly stopped: boolean;
}

/**
 * Runs `round` every `everyMs`, each round `everyMs` after the previous one ended (a slow round never
 * overlaps the next), until stop(). `round` handles its own errors; one that throws is dropped.
 */
export function repeatEvery(everyMs: number, round: () => Promise<unknown>): Monitor {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const loop = () => {
    if (stopped) return;
    running = round()
      .catch(() => undefined)
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, everyMs);
      });
  };
  timer = setTimeout(loop, everyMs);
  return {
    get stopped() {
      return stopped;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
