/**
 * Discord lets a bot write about 5 messages per 5 s in one channel (posts and edits, through the bot token
 * or interaction webhooks alike). Several workers painting into one channel would spend that on progress
 * edits; this keeps count per channel so that progress and queue-position edits (which can be skipped)
 * leave `reserve` writes free for finished images (which cannot), and stay off a channel Discord has just
 * answered with a 429.
 */
export class WriteBudget {
  private readonly writes = new Map<string, number[]>();
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    private readonly limit = 5,
    private readonly windowMs = 5000,
    private readonly reserve = 2,
  ) {}

  private recent(channelId: string, now: number): number[] {
    const list = (this.writes.get(channelId) ?? []).filter((t) => t > now - this.windowMs);
    this.writes.set(channelId, list);
    return list;
  }

  /** A write to this channel is being sent. */
  note(channelId: string): void {
    const now = Date.now();
    this.recent(channelId, now).push(now);
  }

  /** Discord answered 429 for this channel: no optional writes until it says so. */
  limited(channelId: string, retryAfterMs: number): void {
    this.blockedUntil.set(channelId, Math.max(this.blockedUntil.get(channelId) ?? 0, Date.now() + retryAfterMs));
  }

  /**
   * How long an optional write must wait (0: it may go now). `pending` is how many results may need a
   * write soon (jobs painting in that channel): that many writes stay free, at least `reserve`, while one
   * optional write per window is always left so progress never stops altogether.
   */
  optionalWait(channelId: string, pending = 0): number {
    const now = Date.now();
    const blocked = Math.max(0, (this.blockedUntil.get(channelId) ?? 0) - now);
    const allowed = Math.max(1, this.limit - Math.max(this.reserve, pending));
    const list = this.recent(channelId, now);
    if (list.length < allowed) return blocked;
    return Math.max(blocked, list[list.length - allowed]! + this.windowMs - now);
  }
}
