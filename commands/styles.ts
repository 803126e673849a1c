import { MessageFlags, SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../src/bot/context.ts';
import { stylesPage } from '../src/bot/styles.ts';
import { clip, NO_MENTIONS } from '../src/bot/text.ts';

/** `/styles [page]`: the styles (LoRAs in LORA_DIR) this bot paints with, privately, a page at a time. */
export const command: SlashCommand = {
  name: 'styles',
  definition() {
    return new SlashCommandBuilder()
      .setName('styles')
      .setDescription('The styles I can paint in (use them with /imagine style, /layout, or a reply)')
      .addIntegerOption((o) => o.setName('page').setDescription('Which page of the list').setMinValue(1))
      .toJSON();
  },
  async execute(ix, ctx) {
    // Hashing new files can take a moment: acknowledge first (privately), then list.
    await ix.deferReply({ flags: MessageFlags.Ephemeral });
    const styles = await ctx.flows.styles();
    const { text } = stylesPage(styles, ix.options.getInteger('page') ?? 1);
    await ix.editReply({ content: clip(text), allowedMentions: NO_MENTIONS });
  },
};
