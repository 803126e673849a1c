import { MessageFlags } from 'discord.js';
import type { ButtonAction } from '../context.ts';
import { DELETED_BY_USER } from '../delivery.ts';
import { DiscordCode, discordCode } from '../errors.ts';
import { NO_MENTIONS } from '../text.ts';

export const DELETED_TEXT =
  '🗑️ Deleted the message (and stopped its painting, if it was still waiting or painting). The bot keeps its record and files, so later versions can still show it in **History**; ask the bot’s operator to remove them for good.';

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
    // Say what Delete did and did not do: the record stays (History and edits of later versions use it).
    await ix.followUp({ content: DELETED_TEXT, flags: MessageFlags.Ephemeral, allowedMentions: NO_MENTIONS });
  },
};
