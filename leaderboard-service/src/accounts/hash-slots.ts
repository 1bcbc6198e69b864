/**
 * A bound on password hashing (argon2id: tens of ms of CPU and ~19 MiB each).
 * At most `concurrency` run at once and at most `queueMax` wait; anything
 * beyond is refused at once with 503, so a flood of logins or registrations
 * cannot take every core from board reads, and waiting requests cannot pile
 * up without end.
 */
import { AppError } from '@lb/common/contracts';

export class HashSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly queueMax: number,
  ) {}

  /** Runs `fn` in a slot; 503 `unavailable` with `retry_after` when the queue is full. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.queueMax) {
        throw new AppError('unavailable', 'too many password checks in progress, try again shortly', { retry_after: 1 });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, if any.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Slots in use and requests waiting (for tests and health). */
  load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }
}
