import { MessageFlags, SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../src/bot/context.ts';
import { clip, NO_MENTIONS, positionText, quote } from '../src/bot/text.ts';

/** `/queue`: how busy the painters are (per model across the cluster with Redis), and where the caller's own jobs are. */
export const command: SlashCommand = {
  name: 'queue',
  definition() {
    return new SlashCommandBuilder()
      .setName('queue')
      .setDescription('How many images are waiting, and where yours are')
      .toJSON();
  },
  async execute(ix, ctx) {
    const stats = await ctx.queue.stats();
    const lines: string[] = [];
    if (!ctx.flows.canPaint) lines.push(`ℹ️ ${ctx.flows.noModelText()}`);
    else {
      const painter = ctx.flows.painting.info
        ? `${ctx.flows.painting.info.id}`
        : ctx.flows.painting.mode === 'loading'
          ? 'loading the model'
          : 'external workers';
      lines.push(
        `🖌️ ${stats.running} painting, ${stats.queued} waiting · ${stats.workers.length || (ctx.flows.painting.mode === 'ready' ? 1 : 0)} worker(s) · ${painter}`,
      );
      // Across the cluster (BullMQ): one queue per model, each with the workers that serve it.
      for (const m of stats.models ?? []) {
        lines.push(
          `-# ${m.model}: ${m.workers} worker${m.workers === 1 ? '' : 's'}, ${m.running} painting, ${m.queued} waiting${m.workers === 0 ? ' — no worker serves it right now' : ''}`,
        );
      }
    }
    const mine = await ctx.queue.activeFor(ix.user.id);
    if (mine.length === 0) lines.push('You have nothing waiting or painting.');
    for (const job of mine) {
      const g = ctx.store.getGeneration(job.generationId);
      const where =
        job.status === 'running'
          ? `painting${job.progress ? `, step ${job.progress.step}/${job.progress.total}` : ''}`
          : positionText((await ctx.queue.position(job.id)) ?? 1);
      lines.push(`• ${quote(g?.requestText ?? job.generationId, 80)}: ${where}`);
    }
    await ix.reply({ content: clip(lines.join('\n')), flags: MessageFlags.Ephemeral, allowedMentions: NO_MENTIONS });
  },
};
