import { readFileSync } from 'node:fs';
import { MessageFlags } from 'discord.js';
import type { ButtonAction } from '../context.ts';
import { showLayout } from '../present.ts';

function readable(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Layout: the boxes and every prompt, privately. Looking is harmless: anyone may see how an image was laid out. */
export const button: ButtonAction = {
  verb: 'layout',
  open: true,
  renders: true,
  async execute(ix, g, ctx) {
    await ix.deferReply({ flags: MessageFlags.Ephemeral });
    const png = readable(g.artifacts['layout.png']) ?? (await ctx.planner.renderLayout(g.params.scene));
    const image = readable(g.artifacts['image.png']);
    // A damaged image is drawn over as if it were missing.
    const over = image ? await ctx.planner.renderLayout(g.params.scene, image).catch(() => png) : png;
    await ix.editReply(showLayout(g, over));
  },
};
