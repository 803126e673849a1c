import type { ButtonAction } from '../context.ts';
import { interactionTarget, requesterOf, respond, showPrepared } from '../present.ts';
import { quote } from '../text.ts';

/** Reroll (and Try again after a failure): the same layout with a new seed. */
export const button: ButtonAction = {
  verb: 'reroll',
  async execute(ix, g, ctx) {
    const requester = requesterOf(ix);
    const slot = await ctx.flows.precheck(requester, undefined, { paints: true });
    try {
      await ix.deferReply();
      const prepared = await ctx.flows.reroll(g, requester, interactionTarget(ix));
      const heading = `🎲 New seed for ${quote(g.requestText)}`;
      await ctx.attach(prepared, await respond(ix, showPrepared(prepared, ctx.flows.noModelText(), heading)));
    } finally {
      slot.release();
    }
  },
};
