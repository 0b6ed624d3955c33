// Stopping a run from outside: Ctrl-C (SIGINT), a job scheduler, `timeout` or a container stop
// (SIGTERM), a closed terminal (SIGHUP). The run finishes its step, saves a checkpoint to resume
// from, and exits with 128 + the signal's number, so scripts can tell it from a finished run.
// Listening starts when the steps do: before that there is nothing to save, and the signal's
// default action ends the process at once (with the same status) even inside a long synchronous
// stretch such as decoding an image folder, which a listener would only see once it returns.

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
export type StopSignalName = keyof typeof SIGNALS;

/** The signal that asked a run to stop, once one has; owned by the task that runs training. */
export class StopSignal {
  #received: StopSignalName | null = null;
  readonly #listeners: [StopSignalName, () => void][] = [];

  /** Listens for SIGINT, SIGTERM and SIGHUP (where the platform has them); once is enough. */
  listen(): this {
    if (this.#listeners.length) return this;
    for (const name of Object.keys(SIGNALS) as StopSignalName[]) {
      const on = () => {
        this.#received ??= name;
      };
      try {
        Deno.addSignalListener(name, on);
        this.#listeners.push([name, on]);
      } catch { /* this platform has no such signal (Windows has only SIGINT, SIGBREAK) */ }
    }
    return this;
  }

  /** Asks for a stop as if `name` had arrived (tests, and callers with their own reasons). */
  request(name: StopSignalName): void {
    this.#received ??= name;
  }

  get received(): StopSignalName | null {
    return this.#received;
  }

  /** The conventional exit status of a process stopped by the signal: 128 + its number. */
  get exitCode(): number {
    return this.#received ? 128 + SIGNALS[this.#received] : 0;
  }

  dispose(): void {
    for (const [name, on] of this.#listeners.splice(0)) Deno.removeSignalListener(name, on);
  }
}
