import type { Config } from '../config/config.ts';
import type { BotQueue } from '../queue/queue.ts';
import type { Store } from '../store/store.ts';

/** A user's place for one request, held from before planning until its job is queued (or it fails). */
export interface Slot {
  release(): void;
}

const RENDER_WINDOW_MS = 60_000;

/**
 * Per-user limits, decided before any work (planning is an LLM call; layouts and history pictures are sharp
 * renders). Reserving is synchronous, one check-and-take, so requests sent together see each other: the
 * cooldown and the job limit hold for 30 simultaneous /imagine as they do for 30 slow ones.
 */
export class Limiter {
  /** Requests reserved and not yet queued, per user. */
  private readonly inFlight = new Map<string, number>();
  private readonly lastAt = new Map<string, number>();
  private readonly renders = new Map<string, number[]>();

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly queue: BotQueue,
  ) {}

  private held(userId: string): number {
    return this.inFlight.get(userId) ?? 0;
  }

  /** Takes a slot, or says why not. `paints`: the request will queue a job (counted by the per-user job limit). */
  async reserve(userId: string, { paints }: { paints: boolean }): Promise<Slot | string> {
    const { userCooldownSeconds, userMaxConcurrentJobs } = this.config.limits;
    const now = Date.now();
    const last = Math.max(this.lastAt.get(userId) ?? 0, this.store.lastRequestAt(userId) ?? 0);
    if (last > 0 && userCooldownSeconds > 0) {
      const wait = last + userCooldownSeconds * 1000 - now;
      if (wait > 0) return `Slow down a little: try again in ${Math.ceil(wait / 1000)} s.`;
    }
    if (paints && this.held(userId) >= userMaxConcurrentJobs) return this.overLimit(this.held(userId));
    // Taken before the first await: whatever arrives meanwhile counts this one.
    this.lastAt.set(userId, now);
    this.inFlight.set(userId, this.held(userId) + 1);
    let released = false;
    const slot: Slot = {
      release: () => {
        if (released) return;
        released = true;
        const n = this.held(userId) - 1;
        if (n > 0) this.inFlight.set(userId, n);
        else this.inFlight.delete(userId);
      },
    };
    if (!paints) return slot;
    try {
      const active = (await this.queue.activeFor(userId)).length;
      // Jobs already queued plus requests being planned, this one included.
      if (active + this.held(userId) > userMaxConcurrentJobs) {
        slot.release();
        return this.overLimit(active);
      }
    } catch (e) {
      slot.release();
      throw e;
    }
    return slot;
  }

  private overLimit(n: number): string {
    const limit = this.config.limits.userMaxConcurrentJobs;
    return `You already have ${n} image${n === 1 ? '' : 's'} waiting or painting (the limit is ${limit}). Wait for one to finish, or delete one.`;
  }

  /** History, Layout, Undo and Continue draw pictures: at most USER_RENDERS_PER_MINUTE per user. */
  render(userId: string): string | undefined {
    const now = Date.now();
    const recent = (this.renders.get(userId) ?? []).filter((t) => t > now - RENDER_WINDOW_MS);
    const max = this.config.limits.userRendersPerMinute;
    if (recent.length >= max) {
      const wait = recent[0]! + RENDER_WINDOW_MS - now;
      this.renders.set(userId, recent);
      return `That is ${max} pictures in a minute; try again in ${Math.ceil(wait / 1000)} s.`;
    }
    recent.push(now);
    this.renders.set(userId, recent);
    return undefined;
  }
}
