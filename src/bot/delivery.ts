import { readFileSync } from 'node:fs';
import { Routes } from 'discord.js';
import type { REST, RawFile } from '@discordjs/rest';
import type { Config } from '../config/config.ts';
import { childLogger } from '../log/logger.ts';
import type { BotQueue } from '../queue/queue.ts';
import type { Job } from '../queue/schema.ts';
import type { Store } from '../store/store.ts';
import type { Generation } from '../store/schema.ts';
import { stylesLine } from './styles.ts';
import { canUndo, failedButtons, pendingButtons, resultButtons } from './components.ts';
import { DiscordCode, discordCode, errorId, isTokenGone, shownError } from './errors.ts';
import { fitAttachment, previewAttachment, type Upload } from './images.ts';
import { clip, NO_MENTIONS_API, positionText, progressBar, quote, seconds } from './text.ts';
import { WriteBudget } from './write-budget.ts';

const log = childLogger('delivery');

/** The cancel reason the Delete button uses: such a job's message is gone, so nothing is posted. */
export const DELETED_BY_USER = 'deleted by the user';

export interface DeliveryOptions {
  /** At most one progress edit per message per this many ms (Discord rate limits edits per channel). */
  progressEveryMs?: number;
  /** Stop using an interaction token this long before Discord's 15 minutes are up. */
  tokenMarginMs?: number;
  /** At most one queue-position edit per message per this many ms. */
  positionEveryMs?: number;
  /** Discord's per-channel write limit (writes per window), and how many of them progress edits leave for results. */
  channelWrites?: { limit: number; windowMs: number; reserve: number };
  /** A line shown on waiting jobs (e.g. that the painter is still loading), or undefined. */
  waitingNote?: () => string | undefined;
  /** Wait before trying a result Discord refused once more in this process (ms). */
  retryMs?: number;
}

/** Tries to show one result, across restarts, before it is given up (logged once). */
export const MAX_DELIVERY_TRIES = 5;

interface Tracked {
  lastEditAt: number;
  /** The final edit is queued or done: the feed and a poke may both report the same finished job. */
  finishing: boolean;
  failures: number;
  timer?: NodeJS.Timeout;
  latest?: Job;
  chain: Promise<void>;
  shownRunning: boolean;
  shownNote?: string;
  /** The waiting text last shown (queue position, warming up), and when. */
  shownWaiting?: string;
  lastWaitAt: number;
  /** The progress edit on its way: aborted when the final edit is ready, so it never waits behind it. */
  progressAbort?: AbortController;
}

interface Body {
  content: string;
  components: unknown[];
  attachments?: { id: number; filename: string }[];
  allowed_mentions: typeof NO_MENTIONS_API;
  message_reference?: { message_id: string; fail_if_not_exists: boolean };
}

/**
 * Shows jobs to their users: progress on the job's message (at most one edit per 2.5 s), then the image
 * with its buttons, or what went wrong and what to do next. It follows the queue's change feed, so it
 * works the same after a restart and with separate worker processes. Edits go through the interaction
 * token while it is young; after that (or after it fails) the result is posted as a new channel message
 * replying to the original one, because interaction tokens die after 15 minutes.
 */
export class Delivery {
  private readonly tracked = new Map<string, Tracked>();
  private unsubscribe: (() => void) | undefined;
  private readonly o: Required<Omit<DeliveryOptions, 'waitingNote'>> & Pick<DeliveryOptions, 'waitingNote'>;
  private stopped = false;
  private readonly budget: WriteBudget;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private sweepAgain = false;
  /** Channels where a queue-place edit waits for the write budget. */
  private readonly placeWanted = new Set<string>();

  constructor(
    private readonly rest: REST,
    private readonly applicationId: string,
    private readonly config: Config,
    private readonly store: Store,
    private readonly queue: BotQueue,
    private readonly canPaint: () => boolean,
    options: DeliveryOptions = {},
  ) {
    this.o = {
      progressEveryMs: 2500,
      tokenMarginMs: 60_000,
      positionEveryMs: 5000,
      retryMs: 10_000,
      channelWrites: { limit: 5, windowMs: 5000, reserve: 1 },
      ...options,
    };
    const w = this.o.channelWrites;
    this.budget = new WriteBudget(w.limit, w.windowMs, w.reserve);
    rest.on('rateLimited', (info) => {
      const channel = this.channelOf(info.majorParameter);
      if (channel) this.budget.limited(channel, info.retryAfter);
    });
  }

  /** The channel a rate-limited route belongs to: a channel id, or an interaction webhook of a tracked job. */
  private channelOf(major: string): string | undefined {
    for (const t of this.tracked.values()) {
      const target = t.latest?.target;
      if (
        target &&
        (target.channelId === major || (target.interactionToken && major.includes(target.interactionToken)))
      )
        return target.channelId;
    }
    return /^\d+$/.test(major) ? major : undefined;
  }

  /** Starts following the queue, and shows results that finished while the bot was away. */
  async start(): Promise<void> {
    this.unsubscribe = this.queue.subscribe((job) => this.onJob(job));
    for (const job of await this.queue.undelivered()) this.onJob(job);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    const chains = [...this.tracked.values()].map((t) => {
      if (t.timer) clearTimeout(t.timer);
      return t.chain;
    });
    await Promise.allSettled(chains);
  }

  /** Looks at a job now (its message was just attached, so the feed may have nothing new to say). */
  async poke(jobId: string): Promise<void> {
    const job = await this.queue.get(jobId);
    if (job) this.onJob(job);
  }

  private state(jobId: string): Tracked {
    let t = this.tracked.get(jobId);
    if (!t) {
      t = {
        lastEditAt: 0,
        lastWaitAt: 0,
        chain: Promise.resolve(),
        shownRunning: false,
        finishing: false,
        failures: 0,
      };
      this.tracked.set(jobId, t);
    }
    return t;
  }

  private onJob(job: Job): void {
    if (this.stopped) return;
    // Any change can move the jobs behind it up the queue.
    this.sweepSoon(250);
    if (job.deliveredAt !== null || !job.target.messageId) return;
    const t = this.state(job.id);
    t.latest = job;
    if (job.status === 'done' || job.status === 'failed' || job.status === 'cancelled') {
      if (t.timer) clearTimeout(t.timer);
      t.timer = undefined;
      t.progressAbort?.abort();
      if (t.finishing) return;
      t.finishing = true;
      this.enqueue(t, () => this.finishOrRetry(t, job));
      return;
    }
    if (job.status === 'queued') {
      if (job.note && t.shownNote !== job.note) {
        t.shownNote = job.note;
        this.enqueue(t, () => this.requeued(job));
      }
      return;
    }
    // Running: remember the newest state and flush it no sooner than the throttle allows.
    if (!t.shownRunning) {
      t.shownRunning = true;
      this.store.updateGeneration(job.generationId, { status: 'running', startedAt: job.startedAt });
    }
    if (t.timer) return;
    this.schedule(t, Math.max(0, t.lastEditAt + this.o.progressEveryMs - Date.now()));
  }

  /** Jobs painting in a channel: each may need a write for its result at any moment. */
  private painting(channelId: string): number {
    let n = 0;
    for (const t of this.tracked.values())
      if (t.latest?.status === 'running' && !t.finishing && t.latest.target.channelId === channelId) n++;
    return n;
  }

  /** One pending progress flush per job; it shows whatever state is newest when it runs. */
  private schedule(t: Tracked, wait: number): void {
    t.timer = setTimeout(() => {
      t.timer = undefined;
      const latest = t.latest;
      if (latest && latest.status === 'running') this.enqueue(t, () => this.progress(latest));
    }, wait);
  }

  /** Edits of one message happen one after another, so the final edit is always the last. */
  private enqueue(t: Tracked, work: () => Promise<void>): void {
    t.chain = t.chain.then(work).catch((e: unknown) => log.error({ err: e }, 'delivery failed'));
  }

  private generation(job: Job): Generation | undefined {
    return this.store.getGeneration(job.generationId);
  }

  private async progress(queued: Job): Promise<void> {
    const t = this.state(queued.id);
    // The newest known state, which may have moved on while this edit waited its turn.
    const job = t.latest?.status === 'running' ? t.latest : queued;
    if (this.stopped || t.finishing) return;
    // Counted from the end of the previous edit: a slow request must not bunch two edits together. Progress
    // is skippable: it also waits while the channel's write budget is down to what results need.
    // A place edit waiting for the same channel goes first: it is rarer and says more.
    const reserve = this.painting(job.target.channelId) + (this.placeWanted.has(job.target.channelId) ? 1 : 0);
    const wait = Math.max(
      t.lastEditAt + this.o.progressEveryMs - Date.now(),
      this.budget.optionalWait(job.target.channelId, reserve),
    );
    if (wait > 0) {
      if (!t.timer) this.schedule(t, wait);
      return;
    }
    const g = this.generation(job);
    const step = job.progress?.step ?? 0;
    const total = job.progress?.total ?? g?.params.steps ?? 0;
    const lines = [`🎨 Painting ${quote(g?.requestText ?? '')} — step ${step}/${total} ${progressBar(step, total)}`];
    if (job.note) lines.push(`_${job.note}._`);
    let files: Upload[] = [];
    if (job.progress?.previewPath) {
      try {
        files = [await previewAttachment(readFileSync(job.progress.previewPath))];
      } catch (e) {
        log.debug({ err: e }, 'preview not readable yet');
      }
    }
    const abort = new AbortController();
    t.progressAbort = abort;
    try {
      await this.edit(job, this.body(lines.join('\n'), pendingButtons(job.generationId), files), files, {
        final: false,
        signal: abort.signal,
      });
    } catch (e) {
      // Overtaken by the result: the progress edit was dropped on purpose.
      if (!abort.signal.aborted) throw e;
    } finally {
      t.lastEditAt = Date.now();
      if (t.progressAbort === abort) t.progressAbort = undefined;
    }
  }

  private sweepSoon(ms: number): void {
    if (this.sweepTimer || this.stopped) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      void this.sweep();
    }, ms);
    this.sweepTimer.unref();
  }

  /**
   * Shows waiting jobs their place as the queue moves (and a line such as "the painter is warming up"):
   * at most one such edit per message per positionEveryMs, and only when the channel has writes to spare.
   */
  private async sweep(): Promise<void> {
    if (this.stopped) return;
    if (this.sweeping) {
      // Something moved while this look was under way: look again once it is done.
      this.sweepAgain = true;
      return;
    }
    this.sweeping = true;
    try {
      const waiting = [...this.tracked.entries()].filter(
        ([, t]) => t.latest?.status === 'queued' && !t.finishing && t.latest.target.messageId,
      );
      if (!waiting.length) return;
      const ids = waiting.map(([id]) => id);
      const places = this.queue.positions
        ? await this.queue.positions(ids)
        : new Map(await Promise.all(ids.map(async (id) => [id, (await this.queue.position(id)) ?? 0] as const)));
      const note = this.o.waitingNote?.();
      let later = Infinity;
      this.placeWanted.clear();
      for (const [id, t] of waiting) {
        const place = places.get(id);
        if (!place) continue;
        const job = t.latest!;
        const text = `${positionText(place)}${note ? ` · ${note}` : ''}`;
        if (t.shownWaiting === undefined && !note) {
          // The first answer already showed the place it got at enqueue time.
          t.shownWaiting = text;
          continue;
        }
        if (t.shownWaiting === text) continue;
        const wait = Math.max(
          t.lastWaitAt + this.o.positionEveryMs - Date.now(),
          this.budget.optionalWait(job.target.channelId, this.painting(job.target.channelId)),
        );
        if (wait > 0) {
          later = Math.min(later, wait);
          this.placeWanted.add(job.target.channelId);
          continue;
        }
        t.shownWaiting = text;
        t.lastWaitAt = Date.now();
        this.enqueue(t, () => this.waitingEdit(job, place, note));
      }
      if (later < Infinity) this.sweepSoon(later);
    } catch (e) {
      log.debug({ err: e }, 'could not update queue positions');
    } finally {
      this.sweeping = false;
      if (this.sweepAgain) {
        this.sweepAgain = false;
        this.sweepSoon(50);
      }
    }
  }

  private async waitingEdit(job: Job, place: number, note: string | undefined): Promise<void> {
    const t = this.state(job.id);
    if (t.finishing || t.latest?.status !== 'queued') return;
    const g = this.generation(job);
    const lines = [
      `⏳ Waiting to paint ${quote(g?.requestText ?? '')}: ${positionText(place)}. This message shows the painting as it goes.`,
    ];
    if (note) lines.push(`-# ${note}`);
    await this.edit(job, this.body(lines.join('\n'), pendingButtons(job.generationId), []), [], { final: false });
  }

  private async requeued(job: Job): Promise<void> {
    const position = await this.queue.position(job.id);
    const g = this.generation(job);
    const text = `⏳ ${quote(g?.requestText ?? '')}: ${job.note}. Now ${positionText(position ?? 1)}.`;
    await this.edit(job, this.body(text, pendingButtons(job.generationId), []), [], { final: false });
  }

  /**
   * Discord's REST client already retries server errors; what still fails here (a network outage, a
   * permission just removed) gets one more try a little later. A job left undelivered is tried again at
   * the next start.
   */
  private async finishOrRetry(t: Tracked, job: Job): Promise<void> {
    try {
      await this.finish(job);
      this.store.clearDeliveryFailures(job.id);
    } catch (e) {
      t.failures += 1;
      const code = discordCode(e);
      const tries = this.store.noteDeliveryFailure(job.id, `${code ?? ''} ${(e as Error)?.message ?? String(e)}`);
      // The channel is gone or closed to the bot: no later try can work. Otherwise a bounded number of tries,
      // counted across restarts, so a result nobody can receive is not tried at every start forever.
      const hopeless = code === DiscordCode.UnknownChannel || code === DiscordCode.MissingAccess;
      if (hopeless || tries >= MAX_DELIVERY_TRIES) {
        log.warn(
          { err: e, jobId: job.id, generationId: job.generationId, channelId: job.target.channelId, tries },
          'giving up on showing a finished job: Discord will not take it in that channel',
        );
        await this.queue.markDelivered(job.id);
        this.tracked.delete(job.id);
        return;
      }
      log.error({ err: e, jobId: job.id, failures: t.failures, tries }, 'could not show a finished job');
      if (t.failures < 2 && !this.stopped) {
        const retry = setTimeout(() => this.enqueue(t, () => this.finishOrRetry(t, job)), this.o.retryMs);
        retry.unref();
      } else {
        // Tried again at the next start (up to MAX_DELIVERY_TRIES in all); nothing to keep in memory until then.
        this.tracked.delete(job.id);
      }
    }
  }

  private async finish(job: Job): Promise<void> {
    const g = this.generation(job);
    if (!g) {
      await this.queue.markDelivered(job.id);
      return;
    }
    if (job.status === 'done' && job.result) {
      const timings: Record<string, number> = { paint: job.result.paintMs };
      if (job.startedAt) timings.queue = Math.max(0, job.startedAt - job.createdAt);
      if (job.finishedAt) timings.total = job.finishedAt - g.createdAt;
      const updated = this.store.updateGeneration(g.id, {
        status: 'done',
        modelId: job.result.model.id,
        modelVersion: job.result.model.version,
        artifacts: job.result.artifacts,
        finishedAt: job.finishedAt,
        startedAt: job.startedAt,
        timings,
        error: null,
      });
      const limit = Math.min(this.config.limits.attachmentSizeLimit, job.target.attachmentSizeLimit ?? Infinity);
      const image = await fitAttachment(readFileSync(job.result.imagePath), limit, `scenewright-${g.id}`);
      const shown = await this.edit(
        job,
        this.body(
          this.doneText(updated, job),
          resultButtons(g.id, { canPaint: this.canPaint(), undo: canUndo(updated) }),
          [image],
        ),
        [image],
        { final: true },
      );
      // Replies and buttons on the message that now shows the image lead back to this generation.
      if (shown) this.store.linkMessage(shown, job.target.channelId, g.id, 'result');
    } else if (job.status === 'cancelled') {
      this.store.updateGeneration(g.id, { status: 'cancelled', finishedAt: job.finishedAt, error: job.error });
      if (job.error !== DELETED_BY_USER) {
        await this.edit(job, this.body(`🚫 ${quote(g.requestText)} was cancelled.`, [], []), [], { final: true });
      }
    } else {
      this.store.updateGeneration(g.id, { status: 'failed', finishedAt: job.finishedAt, error: job.error });
      const id = errorId();
      log.warn({ errorId: id, jobId: job.id, generationId: g.id, error: job.error }, 'a job failed');
      const why = shownError(job.error);
      const again = g.kind === 'repaint' ? 'paint the changed picture afresh' : 'paint it once more';
      const text = `⚠️ I could not paint ${quote(g.requestText)}${why ? `: ${why}` : ''} (error \`${id}\`).\nPress **Try again** to ${again}, or change the request. If it keeps failing, tell the bot's operator the error id.`;
      await this.edit(job, this.body(text, failedButtons(g.id, { canPaint: this.canPaint() }), []), [], {
        final: true,
      });
    }
    await this.queue.markDelivered(job.id);
    this.tracked.delete(job.id);
  }

  private doneText(g: Generation, job: Job): string {
    const p = g.params;
    const head =
      g.kind === 'repaint'
        ? `✅ Repainted ${p.repaint?.regions.map((r) => p.scene.regions.find((x) => x.id === r.id)?.label ?? r.id).join(', ') || 'the image'} for ${quote(g.requestText)}`
        : `✅ ${quote(g.requestText)}`;
    const facts = [
      `seed ${p.seed}`,
      `${p.steps} steps`,
      job.result?.model.id ?? p.model,
      `${p.scene.width}×${p.scene.height}`,
    ];
    if (job.result) facts.push(seconds(job.result.paintMs));
    const styles = stylesLine(p.scene);
    return clip(`${head}\n-# ${facts.join(' · ')} · reply to this image to change it${styles ? `\n-# ${styles}` : ''}`);
  }

  private body(content: string, components: unknown[], files: Upload[]): Body {
    return {
      content: clip(content),
      components,
      // Listing the attachments replaces the old ones (the layout picture, the last preview); leaving the
      // field out keeps them, which is what a text-only progress edit wants.
      ...(files.length ? { attachments: files.map((f, i) => ({ id: i, filename: f.name })) } : {}),
      allowed_mentions: NO_MENTIONS_API,
    };
  }

  private raw(files: Upload[]): RawFile[] {
    return files.map((f) => ({ name: f.name, data: f.data }));
  }

  private tokenUsable(job: Job): boolean {
    const t = job.target;
    return Boolean(t.interactionToken) && (t.tokenExpiresAt ?? 0) - this.o.tokenMarginMs > Date.now();
  }

  /**
   * Edits the job's message. Through the interaction token while it lives; without one (reply-driven
   * jobs, whose message the bot posted itself) through the channel. A final result whose token has died
   * becomes a new message replying to the original one.
   */
  private async edit(
    job: Job,
    body: Body,
    files: Upload[],
    { final, signal }: { final: boolean; signal?: AbortSignal },
  ): Promise<string | undefined> {
    const target = job.target;
    const messageId = target.messageId!;
    this.budget.note(target.channelId);
    if (!target.viaInteraction) {
      try {
        await this.rest.patch(Routes.channelMessage(target.channelId, messageId), {
          body,
          files: this.raw(files),
          signal,
        });
        return messageId;
      } catch (e) {
        if (discordCode(e) !== DiscordCode.UnknownMessage) throw e;
        return this.gone(job);
      }
    }
    if (this.tokenUsable(job)) {
      try {
        // auth: false, as discord.js does for webhooks: a 401 on a request sent with the bot token makes
        // @discordjs/rest drop the token, and the whole bot with it.
        await this.rest.patch(Routes.webhookMessage(this.applicationId, target.interactionToken!, '@original'), {
          body,
          files: this.raw(files),
          auth: false,
          signal,
        });
        return messageId;
      } catch (e) {
        if (discordCode(e) === DiscordCode.UnknownMessage) return this.gone(job);
        if (signal?.aborted || !isTokenGone(e)) throw e;
        log.info({ jobId: job.id }, 'interaction token no longer works; falling back to channel messages');
        job.target = { ...target, interactionToken: undefined, tokenExpiresAt: undefined };
        await this.queue.setTarget(job.id, { interactionToken: undefined, tokenExpiresAt: undefined });
      }
    }
    // The message is an interaction response whose token is gone. Progress is decoration and can wait
    // for the result; the result becomes a new message replying to the original one.
    if (!final) return undefined;
    const posted = (await this.rest.post(Routes.channelMessages(target.channelId), {
      body: { ...body, message_reference: { message_id: messageId, fail_if_not_exists: false } },
      files: this.raw(files),
    })) as { id: string };
    await this.queue.setTarget(job.id, { messageId: posted.id, viaInteraction: false });
    // Best effort: point the old message at the new one (Discord may refuse channel edits of interaction replies).
    await this.rest
      .patch(Routes.channelMessage(target.channelId, messageId), {
        body: { content: '⬇️ Finished: see the reply below.', components: [], allowed_mentions: NO_MENTIONS_API },
      })
      .catch((e: unknown) => log.debug({ err: e }, 'could not edit the old interaction message'));
    return posted.id;
  }

  /** The job's message was deleted by someone: nothing to update. */
  private gone(job: Job): undefined {
    log.info({ jobId: job.id }, 'the job message is gone; nothing to update');
    return undefined;
  }

  /** Links the message that shows a job (the first reply) so buttons, replies and fallbacks find it. */
  async attach(job: Job, posted: { id: string; viaInteraction: boolean }): Promise<void> {
    // The first answer was just written to that channel: it counts against the channel's limit too.
    this.budget.note(job.target.channelId);
    // A message that fell back to the channel is edited through the channel, never through the token.
    await this.queue.setTarget(
      job.id,
      posted.viaInteraction
        ? { messageId: posted.id }
        : { messageId: posted.id, viaInteraction: false, interactionToken: undefined, tokenExpiresAt: undefined },
    );
    await this.poke(job.id);
  }
}
