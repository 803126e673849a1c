import type { ButtonAction } from '../context.ts';
import { DELETED_BY_USER } from '../delivery.ts';
import { DiscordCode, discordCode } from '../errors.ts';

/** Delete: cancels the job if it still waits or paints, and removes the message (the stored record stays). */
export const button: ButtonAction = {
  verb: 'delete',
  async execute(ix, g, ctx) {
    await ix.deferUpdate();
    if (g.jobId) await ctx.queue.cancel(g.jobId, DELETED_BY_USER);
    try {
      await ix.message.delete();
    } catch (e) {
      if (discordCode(e) !== DiscordCode.UnknownMessage) throw e;
    }
    ctx.store.unlinkMessage(ix.message.id);
  },
};
