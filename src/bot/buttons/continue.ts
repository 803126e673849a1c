import type { ButtonAction } from '../context.ts';
import { quote } from '../text.ts';
import { bringBack } from './bring-back.ts';

/** Continue from vN (on a history message): brings that version back as the one to reply to. */
export const button: ButtonAction = {
  verb: 'continue',
  renders: true,
  async execute(ix, g, ctx) {
    const h = await ctx.flows.history(g);
    const v = h.versions[h.versions.length - 1]!;
    const heading = `⏪ Back to v${v.number} of ${quote(h.versions[0]!.generation.requestText)}: ${quote(v.label)}.`;
    await bringBack(ix, ctx, g, v, heading);
  },
};
