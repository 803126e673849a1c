import type { ButtonAction } from '../context.ts';
import { canUndo } from '../components.ts';
import { Refusal } from '../errors.ts';
import { quote } from '../text.ts';
import { bringBack } from './bring-back.ts';

/** Undo (under an edit): brings back the version the edit started from. */
export const button: ButtonAction = {
  verb: 'undo',
  renders: true,
  async execute(ix, g, ctx) {
    if (!canUndo(g) || !g.parentId)
      throw new Refusal(
        'This image is not an edit of another one, so there is nothing to undo. Press **History** to see its versions.',
      );
    const parent = ctx.store.getGeneration(g.parentId);
    if (!parent)
      throw new Refusal(
        'The version before this edit was deleted, so I cannot go back to it. Press **History** to see the versions I still have.',
      );
    const h = await ctx.flows.history(parent);
    const v = h.versions[h.versions.length - 1]!;
    await bringBack(ix, ctx, parent, v, `↩️ Undid ${quote(g.requestText)}: this is the version before it.`);
  },
};
