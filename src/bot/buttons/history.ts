import type { ButtonAction } from '../context.ts';
import { HISTORY_MAX } from '../components.ts';
import { renderHistory } from '../images.ts';
import { respond, showHistory } from '../present.ts';

/** History: the chain of versions as one picture, with a "continue from" button per version. */
export const button: ButtonAction = {
  verb: 'history',
  renders: true,
  async execute(ix, g, ctx) {
    await ix.deferReply();
    const h = await ctx.flows.history(g);
    // The picture shows the versions the buttons offer: the last HISTORY_MAX of a long conversation.
    const png = await renderHistory(
      h.versions.slice(-HISTORY_MAX).map((v) => ({
        title: `v${v.number}${v.generation.id === g.id ? ' (this one)' : ''}`,
        label: v.label,
        png: v.png,
      })),
    );
    const posted = await respond(ix, showHistory(g, h, png));
    // Replying to the history message changes the version it was opened from.
    ctx.store.linkMessage(posted.id, posted.channelId, g.id, 'history');
  },
};
